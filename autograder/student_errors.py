"""What running student code can end in, as the hidden tests see it: it raised, it ran out of
time, or its process died. Raised by the session, caught by the plugin and the checks."""
from __future__ import annotations


class StudentCodeError(Exception):
    """Student code raised; carries the student's own traceback."""

    def __init__(self, what: str, exc_type: str, message: str, traceback: str, hint: str = ""):
        self.what, self.exc_type, self.message = what, exc_type, message
        self.traceback, self.hint = traceback, hint
        super().__init__(f"{what} raised {exc_type}: {message}")


class StudentTimeout(Exception):
    def __init__(self, what: str, limit: float):
        self.what, self.limit = what, limit
        super().__init__(f"{what} did not finish within the {limit:g} s time limit of this test "
                         "(an infinite loop, or much slower than needed?)")


class StudentCrash(Exception):
    def __init__(self, what: str, cause: str, protocol: bool = False):
        self.what, self.cause = what, cause
        why = ("the process running your code answered with something that is not a valid "
               "reply (does your code write to the grader's pipes?)" if protocol else
               "the process running your code died (os._exit/sys.exit, a segfault, or memory "
               "exhaustion?)")
        super().__init__(f"{cause} while running {what}: {why}")

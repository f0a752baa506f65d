"""dlgrade: the autograder and assignment toolkit of a deep-learning course.

In a student notebook, ``from autograder import check; check("affine_backward")`` runs the
public checks for one function on the student's own machine.
"""
__version__ = "0.1.0"


def check(name: str, assignment: str | None = None) -> bool:
    """Run the public checks for ``name`` against the functions defined in your notebook."""
    import sys

    from .public import checks_are_off, run_public_check

    if checks_are_off():
        return None  # the grader loading the master: see public.checks_off
    namespace = sys._getframe(1).f_globals
    return run_public_check(name, namespace, assignment)

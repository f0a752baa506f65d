"""A session over trusted code in this process (the reference, a mutant of it): the same
requests, encodings and replies as a confined worker, without the process. For baselines,
audits and benchmarks, never for student code."""
from __future__ import annotations

import io

from .codec import frame, read_request
from .session import StudentSession
from .wire import encode_request, read_message


class InProcessWorker:
    """The worker's side of the wire, run here on ``module``'s namespace (a session transport)."""

    device = "cpu"

    def __init__(self, module):
        self._module = module
        self._worker = None

    @property
    def alive(self) -> bool:
        return self._worker is not None

    def start(self):
        """Trusted code has nothing to forget: a restart keeps the module and its objects."""
        if self._worker is None:
            from .worker import Worker

            self._worker = Worker(-1, -1)
            self._worker.namespace = self._module.__dict__

    def request(self, op: str, params: dict, timeout: float) -> dict:
        request = io.BytesIO(encode_request(op, params))
        reply, buffers = self._worker.handle(*read_request(request.read))
        return read_message(io.BytesIO(frame(reply, buffers)).read)

    def close(self):
        pass


def in_process_session(module, name: str = "reference",
                       worker_objects: tuple[str, str] | None = None) -> StudentSession:
    """A session whose "student" is ``module``, started on its first request."""
    return StudentSession([], transport=InProcessWorker(module), mode="all", forbidden=[],
                          assignment=name, worker_objects=worker_objects)

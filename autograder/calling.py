"""How student code is called reproducibly, the same in the worker and in the grader's
replays (diagnoses, audits): a test's random state seeded from one number, and a call that
backpropagates through its output. It runs inside the worker too (copied beside worker.py),
so it imports nothing of the ``autograder`` package."""
from __future__ import annotations

import random
import sys


def seed_everything(seed: int, device: str = "cpu") -> None:
    """Python's, numpy's and (where imported) torch's generators from ``seed``; on CUDA,
    deterministic algorithms too."""
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")  # only where torch is in use: importing it costs a second
    if torch is not None:
        torch.manual_seed(seed)
        if device == "cuda":
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False


def grad_call(fn, args, kwargs, upstream=None, output_index=None):
    """``fn(*args, **kwargs)``, then backpropagation of ``sum(out * upstream)`` (or of a scalar
    out): ``(out, grads)`` with one entry per positional argument, the gradient of each tensor
    argument that requires grad, else None."""
    import torch

    out = fn(*args, **kwargs)
    selected = out[output_index] if output_index is not None else out
    if not isinstance(selected, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor output, got {type(selected).__name__}")
    if upstream is not None:
        upstream = torch.as_tensor(upstream, dtype=selected.dtype, device=selected.device)
        objective = (selected * upstream).sum()
    else:
        objective = selected
    if objective.requires_grad:
        objective.backward()
    grads = [a.grad if isinstance(a, torch.Tensor) and a.requires_grad else None for a in args]
    return out, grads

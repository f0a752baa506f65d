"""What the worker must never read, and proof that it cannot: canaries and released artifacts.

In namespace mode the worker's file system is an allow-list (``_launch.confine_filesystem``),
so none of these places exists for it. Without namespaces (Docker's default profile,
Gradescope) only file modes protect them. Either way, the start-up probe tries each place
below before any student code runs, and grading is refused when one is readable.

- The assignment's secrets (hidden tests, mutants, master): its folder and the master's.
- Confidential folders a caller names (a batch's input and output): the folder itself and the
  canary file the batch puts in it. A folder of mode 0711 cannot be listed, yet its files can
  be opened by name: the canary, a file of known name, catches that.
- Every ``autograder.zip`` that ``dlgrade release`` wrote on this machine (it records them).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

CANARY_NAME = ".dlgrade-canary"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "dlgrade"


def releases_file() -> Path:
    return state_dir() / "released-artifacts.txt"


def record_release(path: Path) -> None:
    """Remember an artifact holding answers, so every later grading proves it unreadable."""
    registry = releases_file()
    registry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry = str(Path(path).resolve())
    if entry not in released_artifacts(existing_only=False):
        with open(registry, "a", encoding="utf-8") as fh:
            fh.write(entry + "\n")
    registry.chmod(0o600)


def released_artifacts(existing_only: bool = True) -> list[str]:
    try:
        lines = releases_file().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [line for line in lines if line and (not existing_only or os.path.exists(line))]


def place_canary(folder: Path) -> Path | None:
    """Put a canary in ``folder`` (owned by the grader, mode 0600); None where it cannot be
    written (a read-only input folder: the folder itself is then what is probed)."""
    path = Path(folder) / CANARY_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(16))
    return path


def probe_targets(secret_paths, confidential=()) -> list[str]:
    """Every path the start-up probe must find unreadable."""
    targets = [str(p) for p in secret_paths]
    for folder in confidential:
        targets += [str(folder), str(Path(folder) / CANARY_NAME)]
    targets += released_artifacts()
    return list(dict.fromkeys(targets))


def preflight(confidential, hide=()) -> dict:
    """Before a batch grades anyone: start a worker exactly as grading does, with no student
    code, and return its probe (``readable``: the confidential places it could read)."""
    from .sandbox import Sandbox, SandboxConfig, private_paths

    sandbox = Sandbox(SandboxConfig(hide=[*hide, *private_paths(confidential)]))
    try:
        sandbox.start()
        probe = sandbox.request("probe", {"paths": probe_targets([], confidential)}, 10)["value"]
        probe["mode"] = sandbox.mode
        probe["namespaces"] = any(n.startswith("namespaces:") for n in sandbox.launch_notes)
        return probe
    finally:
        sandbox.close()

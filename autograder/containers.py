"""Grading inside a container: build the image, run one submission per container.

``grade_in_container`` is what ``dlgrade batch --docker IMAGE`` calls for each submission. The
container is the Gradescope layout of ``docker/Dockerfile``; it runs with no network, a
read-only root file system, memory, CPU and process limits, no capabilities beyond the five
the sandbox needs, ``no-new-privileges``, and two mounts: the submission (read-only) and a
fresh results folder. Whatever goes wrong, a valid ``results.json`` is written; a failure of
the container (not of the submission) is a grader error (``results.grader_error_results``) so
the batch retries it.

Who runs as whom (see README, *Containers*): the grader is root *inside* the container, holding
only CHOWN, DAC_OVERRIDE, KILL, SETGID and SETUID, because it must start the student's worker
as a different, unprivileged uid (61000 + slot) that cannot read the hidden tests; a non-root
grader could not switch uids (Docker grants a non-root user no capabilities), and a worker
sharing the grader's uid could read everything the grader reads. Student code never runs as
root, and never holds a capability. Under a daemon that remaps users (``--userns-remap``) the
container's root is an unprivileged uid of the host; the mounts are then handed to that uid.

Command line (the image must be built before ``batch --docker`` can use it)::

    python -m autograder.containers build [--tag dlgrade:cpu] [--base IMAGE] [--gpu]
    python -m autograder.containers grade NOTEBOOK --assignment NAME [--image dlgrade:cpu]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .results import Results, grader_error_results, write_results

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = PROJECT_ROOT / "docker"
CPU_IMAGE = "dlgrade:cpu"
GPU_IMAGE = "dlgrade:gpu"
# Where scripts/docker-daemon.sh puts its private daemon's socket.
PRIVATE_SOCKET = Path(os.environ.get("DLGRADE_DOCKER_STATE", "/var/tmp/dlgrade-docker")) \
    / "docker.sock"
# What the grader needs and nothing more: CHOWN (the worker's home), SETUID/SETGID (become the
# sandbox uid), KILL (signal and sweep the worker's processes), DAC_OVERRIDE (remove what the
# worker left in its own 0700 home before a restart).
GRADER_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID")
LABEL = "dlgrade.grade"
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
LOG_TAIL = 64 << 10
TMP_MB = 512


class ContainerError(Exception):
    """The container could not grade (no daemon, no image, killed, no results)."""


# ---- the daemon ------------------------------------------------------------------------------

def connect(timeout: float = 60):
    """A Docker client: ``$DOCKER_HOST`` if set, else the private daemon of
    ``scripts/docker-daemon.sh`` when its socket exists, else the system daemon."""
    try:
        import docker
    except ImportError as exc:
        raise ContainerError("the docker Python package is missing "
                             "(pip install 'dlgrade[docker]')") from exc
    try:
        if not os.environ.get("DOCKER_HOST") and PRIVATE_SOCKET.is_socket():
            client = docker.DockerClient(base_url=f"unix://{PRIVATE_SOCKET}", timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ContainerError(f"no Docker daemon is reachable ({exc}); start one "
                             "(scripts/docker-daemon.sh start) or set DOCKER_HOST") from None
    return client


def daemon_problem() -> str | None:
    """Why containers cannot be used here, or None when a daemon answers."""
    try:
        connect(timeout=10).close()
    except ContainerError as exc:
        return str(exc)
    return None


# ---- building the image ----------------------------------------------------------------------

def default_wheels() -> Path | None:
    folder = Path(os.environ.get("DLGRADE_WHEELS", "/opt/wheels"))
    return folder if folder.is_dir() else None


def _copytree(src: Path, dest: Path, *, only=None) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    if only is None:
        shutil.copytree(src, dest, ignore=ignore)
        return
    dest.mkdir(parents=True)
    for path in sorted(src.glob(only)):
        shutil.copy2(path, dest / path.name)


def host_ca_bundle() -> Path | None:
    """The trust store the host's pip uses, when it is not the default one (a network whose
    HTTPS goes through an inspecting proxy): the build inside the image needs it too."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


def stage_context(dest: Path, wheels: Path | None = None, ca_bundle: Path | None = None) -> Path:
    """The build context: the engine, every assignment, the master notebooks, the docker
    folder, local wheels and a CA bundle; nothing else (no .venv, no .git, no bench data)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    _copytree(PROJECT_ROOT / "autograder", dest / "autograder")
    _copytree(PROJECT_ROOT / "assignments", dest / "assignments")
    _copytree(PROJECT_ROOT / "solutions", dest / "solutions", only="*.ipynb")
    (dest / "docker" / "wheels").mkdir(parents=True)
    (dest / "docker" / "certs").mkdir(parents=True)
    for path in DOCKER_DIR.iterdir():
        if path.is_file():
            shutil.copy2(path, dest / "docker" / path.name)
    if ca_bundle is not None:
        shutil.copy2(ca_bundle, dest / "docker" / "certs" / "ca-bundle.crt")
    if wheels is not None:
        for wheel in sorted(Path(wheels).glob("*.whl")):
            target = dest / "docker" / "wheels" / wheel.name
            try:
                os.link(wheel, target)  # torch is ~200 MB: link, don't copy, when we can
            except OSError:
                shutil.copy2(wheel, target)
    return dest


def project_requirements() -> list[str]:
    import tomllib

    with open(PROJECT_ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def download_wheels(dest: Path) -> None:
    """Every library the image needs, as wheels, fetched by this machine's pip (its index,
    proxy and certificates): the build itself then needs no network."""
    import subprocess

    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
           "--dest", str(dest), "-c", str(PROJECT_ROOT / "constraints.txt"),
           *project_requirements()]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ContainerError(f"pip download failed: {proc.stderr.strip()[-2000:]}")


def build_network(client) -> str | None:
    """The network the build's RUN steps get. The host's where allowed (the private daemon has
    no bridge); a user-remapping daemon refuses it: its bridge then, or none at all."""
    if remapped_root(client) is None:
        return "host"
    return None if client.networks.list(names=["bridge"]) else "none"


def build_image(tag: str = CPU_IMAGE, *, base: str | None = None, gpu: bool = False,
                wheels: Path | None = None, pip_args: str | None = None, client=None,
                log=None) -> str:
    """Build (or refresh from the layer cache) the grading image; returns its id.

    pip needs PyPI (and apt Debian's mirror if the base has no Python 3.11). Where the build
    can have no network, the wheels are downloaded here first and pip installs offline.
    """
    from docker.errors import APIError

    client = client or connect(timeout=1800)
    network = build_network(client)
    buildargs = {}
    if pip_args is None and wheels is not None and any(Path(wheels).glob("torch-*.whl")):
        pip_args = ""  # torch is here already: no need for (or access to) its own index
    if network == "none":
        pip_args = "--no-index"
    if base:
        buildargs["BASE"] = base
    if pip_args is not None:
        buildargs["PIP_ARGS"] = pip_args
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dlgrade-build-") as tmp:
        context = stage_context(Path(tmp) / "context", wheels, host_ca_bundle())
        if network == "none":
            download_wheels(context / "docker" / "wheels")
        dockerfile = "docker/Dockerfile.gpu" if gpu else "docker/Dockerfile"
        try:
            stream = client.api.build(path=str(context), dockerfile=dockerfile, tag=tag,
                                      buildargs=buildargs, network_mode=network, rm=True,
                                      forcerm=True, decode=True)
            for chunk in stream:
                if "error" in chunk:
                    raise ContainerError(f"building {tag} failed: {chunk['error'].strip()}\n"
                                         + "".join(lines[-40:]))
                text = chunk.get("stream", "")
                if text:
                    lines.append(text)
                    if log is not None:
                        log(text.rstrip("\n"))
        except APIError as exc:
            raise ContainerError(f"building {tag} failed: {exc}") from None
    return client.images.get(tag).id


# ---- grading -----------------------------------------------------------------------------------

def container_options(image: str, *, assignment: str, submission_dir: Path, results_dir: Path,
                      slots_dir: Path, device: str = "cpu", timeout_s: float = 900,
                      memory_mb: int = 3072, cpus: float = 1.0, pids: int = 256) -> dict:
    """Keyword arguments for ``client.containers.create``: every confinement in one place."""
    from docker.types import DeviceRequest, Mount

    options = dict(
        image=image,
        # The container ends itself even if whoever started it is killed and never comes back.
        command=["timeout", "-s", "KILL", str(max(1, int(timeout_s))),
                 "/autograder/run_autograder"],
        environment={
            "DLGRADE_ASSIGNMENT": assignment, "DLGRADE_DEVICE": device,
            # The root file system is read-only: caches go to the container's private /tmp.
            "HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache", "MPLCONFIGDIR": "/tmp/.mpl",
        },
        user="0:0",
        working_dir="/autograder",
        hostname="dlgrade",
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMP_MB}m,mode=1777"},
        mounts=[
            Mount("/autograder/submission", str(submission_dir), type="bind", read_only=True),
            Mount("/autograder/results", str(results_dir), type="bind", read_only=False),
            # The sandbox's slot locks, shared by every container and host grader: concurrent
            # workers get distinct uids, so one submission's processes never count against
            # another's RLIMIT_NPROC (a per-uid count across the whole host).
            Mount("/tmp/dlgrade-slots", str(slots_dir), type="bind", read_only=False),
        ],
        mem_limit=f"{memory_mb}m",
        memswap_limit=f"{memory_mb}m",  # no swap: memory exhaustion ends in the OOM killer
        nano_cpus=int(cpus * 1e9),
        pids_limit=pids,
        cap_drop=["ALL"],
        cap_add=list(GRADER_CAPABILITIES),
        security_opt=["no-new-privileges"],
        init=True,  # a real PID 1 that reaps whatever the grader's children leave
        ipc_mode="private",
        labels={LABEL: assignment},
    )
    if device == "cuda":
        options["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


def slots_dir(owner: tuple[int, int] | None = None) -> Path:
    """The host's slot-lock folder, the same one ``sandbox._Slot`` uses for host graders; with
    a user-remapping daemon, one of the containers' own, owned by their root."""
    if owner is None:
        path = Path(tempfile.gettempdir()) / "dlgrade-slots"
        path.mkdir(mode=0o700, exist_ok=True)
        return path
    path = Path(tempfile.gettempdir()) / f"dlgrade-slots-{owner[0]}"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chown(path, *owner)
    return path


def remapped_root(client) -> tuple[int, int] | None:
    """The host uid and gid of the containers' root when the daemon runs them in a user
    namespace (``dockerd --userns-remap``), else None. The daemon then keeps its data in a
    folder named ``UID.GID`` under its data root, which is where we read them from."""
    info = client.info()
    if not any("name=userns" in str(opt) for opt in info.get("SecurityOptions") or []):
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)", Path(str(info.get("DockerRootDir", ""))).name)
    if not match:
        raise ContainerError("the Docker daemon remaps users, but its data root "
                             f"({info.get('DockerRootDir')}) does not say to which uid")
    return int(match[1]), int(match[2])


def _prune_stale(client) -> None:
    """Stopped grading containers whose caller died before removing them (an hour or older:
    a younger one may still be read by the process that started it)."""
    try:
        client.containers.prune(filters={"label": LABEL, "until": "1h"})
    except Exception:  # noqa: BLE001 - housekeeping must never cost a grade
        pass


def _safe_name(name: str) -> str:
    # The student's own file name, shown back in the results; only what no path may hold goes.
    cleaned = re.sub(r"[\x00-\x1f/\\]", "_", name).strip(" .") or "submission.ipynb"
    return cleaned if cleaned.lower().endswith(".ipynb") else cleaned + ".ipynb"


def grade_in_container(image: str, notebook: Path, assignment_name: str, out_dir: Path, *,
                       device: str = "cpu", timeout_s: float = 900, memory_mb: int = 3072,
                       cpus: float = 1.0, pids: int = 256) -> Path:
    """Grade ``notebook`` in a fresh container of ``image``; returns ``out_dir/results.json``,
    which exists and is valid whatever happened."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    start = time.monotonic()
    try:
        results = _grade(image, Path(notebook), assignment_name, out_dir, device=device,
                         timeout_s=timeout_s, memory_mb=memory_mb, cpus=cpus, pids=pids)
    except ContainerError as exc:
        results = grader_error_results(str(exc), round(time.monotonic() - start, 3))
    except Exception as exc:  # noqa: BLE001 - a results file must exist whatever happened
        results = grader_error_results(f"grading in a container failed: {type(exc).__name__}: "
                                       f"{exc}", round(time.monotonic() - start, 3))
    write_results(results, results_path)
    return results_path


def _grade(image: str, notebook: Path, assignment: str, out_dir: Path, *, device: str,
           timeout_s: float, memory_mb: int, cpus: float, pids: int) -> Results:
    import requests
    from docker.errors import DockerException, ImageNotFound

    if not NAME_RE.match(assignment):
        raise ContainerError(f"invalid assignment name {assignment!r}")
    if device not in ("cpu", "cuda"):
        raise ContainerError(f"unknown device {device!r}")
    if not notebook.is_file():
        raise ContainerError(f"{notebook} is not a file")
    client = connect()
    work = Path(tempfile.mkdtemp(prefix=".container-", dir=out_dir))
    container = None
    try:
        # Only the grader (root in the container) may enter these; the worker's uid may not.
        (work / "submission").mkdir(mode=0o700)
        (work / "results").mkdir(mode=0o700)
        copy = work / "submission" / _safe_name(notebook.name)
        shutil.copyfile(notebook, copy)
        try:
            client.images.get(image)
        except ImageNotFound:
            raise ContainerError(f"the image {image} does not exist on this Docker daemon; "
                                 "build it with `python -m autograder.containers build "
                                 f"--tag {image}`") from None
        owner = remapped_root(client)
        if owner is not None:
            # The container's root is an ordinary uid on this host: the mounts become its.
            try:
                for path in (work / "submission", copy, work / "results"):
                    os.chown(path, *owner)
            except PermissionError:
                raise ContainerError("the Docker daemon remaps users: handing the mounts to "
                                     f"the containers' root (uid {owner[0]}) needs root "
                                     "here") from None
        _prune_stale(client)
        options = container_options(
            image, assignment=assignment, submission_dir=work / "submission",
            results_dir=work / "results", slots_dir=slots_dir(owner), device=device,
            timeout_s=timeout_s, memory_mb=memory_mb, cpus=cpus, pids=pids)
        try:
            container = client.containers.create(**options)
            container.start()
        except DockerException as exc:
            raise ContainerError(f"could not start a container of {image}: {exc}") from None
        timed_out = False
        try:
            # Slack over the in-container limit: the container normally ends itself.
            status = container.wait(timeout=timeout_s + 30)
            code = status.get("StatusCode")
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out, code = True, None
            container.kill()
        container.reload()
        state = container.attrs.get("State", {})
        logs = container.logs(stdout=True, stderr=True, tail=400)[-LOG_TAIL:]
        (out_dir / "container.log").write_bytes(logs)
        return _read_results(work / "results" / "results.json", code=code, timed_out=timed_out,
                             oom=bool(state.get("OOMKilled")), timeout_s=timeout_s,
                             memory_mb=memory_mb, logs=logs.decode("utf-8", "replace"))
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except DockerException:
                pass
        shutil.rmtree(work, ignore_errors=True)
        client.close()


def _read_results(path: Path, *, code, timed_out: bool, oom: bool, timeout_s: float,
                  memory_mb: int, logs: str) -> Results:
    if path.is_file():
        try:
            results = Results.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise ContainerError(f"the container wrote an invalid results.json ({exc})") from None
        if oom:
            # The grader survived (it wrote results) but something in the container, most
            # likely the student's worker, met the container's memory limit.
            note = f"The container reached its memory limit ({memory_mb} MB) while grading."
            results.output = f"{results.output}\n\n{note}" if results.output else note
        return results
    if timed_out or (code == 137 and not oom):
        why = f"grading did not finish within {timeout_s:g} s and was stopped"
    elif oom:
        why = f"the container ran out of its {memory_mb} MB of memory"
    else:
        why = f"the container exited with code {code} and wrote no results"
    tail = "\n".join(logs.strip().splitlines()[-20:])
    raise ContainerError(why + (f"; its last output:\n{tail}" if tail else ""))


# ---- command line --------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.containers",
                                     description="build the grading image, grade in it")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or refresh) the grading image")
    b.add_argument("--tag", help=f"default {CPU_IMAGE} ({GPU_IMAGE} with --gpu)")
    b.add_argument("--base", help="base image (default: the Dockerfile's)")
    b.add_argument("--gpu", action="store_true", help="build docker/Dockerfile.gpu")
    b.add_argument("--wheels", help="folder of local wheels offered to pip first "
                   "(default: $DLGRADE_WHEELS or /opt/wheels where it exists)")
    b.add_argument("--pip-args", help="pip options replacing the Dockerfile's PIP_ARGS")
    sub.add_parser("ping", help="exit 0 when a Docker daemon answers, else say why")
    g = sub.add_parser("grade", help="grade one notebook in a container")
    g.add_argument("notebook")
    g.add_argument("--assignment", "-a", required=True)
    g.add_argument("--image", default=CPU_IMAGE)
    g.add_argument("--out", default=".", help="folder for results.json and container.log")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    g.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    if args.command == "ping":
        problem = daemon_problem()
        print(problem or "a Docker daemon answers")
        return 1 if problem else 0
    if args.command == "build":
        tag = args.tag or (GPU_IMAGE if args.gpu else CPU_IMAGE)
        # Local wheels are usually the CPU build of torch: never offered to the GPU image.
        wheels = Path(args.wheels) if args.wheels else None if args.gpu else default_wheels()
        try:
            image_id = build_image(tag, base=args.base, gpu=args.gpu, wheels=wheels,
                                   pip_args=args.pip_args, log=print)
        except ContainerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"built {tag} ({image_id})")
        return 0
    path = grade_in_container(args.image, Path(args.notebook), args.assignment, Path(args.out),
                              device=args.device, timeout_s=args.timeout)
    results = Results.model_validate_json(path.read_bytes())
    print(f"{results.score:g} / {results.max_score:g} points; results in {path}")
    return 3 if results.grader_error else 0


if __name__ == "__main__":
    sys.exit(main())

"""Confine, then exec the student worker. Run as ``python -I _launch.py CONFIG_JSON``.

Standalone on purpose: it runs with the grader's privileges for a few milliseconds, in a fresh
single-threaded process, and does only what must happen before student code exists:
namespaces (mount, network, pid) where the kernel allows them, hiding the grader's secret
paths, resource limits, and dropping to the sandbox uid. Every step that fails is reported to
the grader (on stderr, as one JSON line) rather than silently skipped.
"""
import ctypes
import errno
import json
import os
import re
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MS_RDONLY, MS_REMOUNT = 1, 32
# Per-mount flags a read-only remount must repeat (the kernel refuses to drop locked ones).
MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
               "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24}
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38

libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    _check(libc.mount(source.encode() if source else None, target.encode(),
                      fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                      data.encode() if data else None), f"mount {target}")


def write_file(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def enter_namespaces(cfg, notes):
    """Returns True when a new pid namespace was created (the caller must then fork)."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID
    if uid != 0:
        flags |= CLONE_NEWUSER
    try:
        _check(libc.unshare(flags), "unshare")
    except OSError as exc:
        notes.append(f"namespaces unavailable ({exc.strerror}); relying on uid and rlimits")
        return False
    if uid != 0:
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/uid_map", f"{uid} {uid} 1")
        write_file("/proc/self/gid_map", f"{gid} {gid} 1")
    notes.append("namespaces: mount, network, pid")
    return True


def confine_filesystem(cfg, notes):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in cfg["hide"]:
        try:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
            elif os.path.exists(path):
                mount("/dev/null", path, None, MS_BIND)
        except OSError as exc:
            notes.append(f"could not hide {path}: {exc.strerror}")
    read_only_everywhere(notes)
    owner = f",uid={cfg['uid']},gid={cfg['gid']}" if cfg.get("uid") is not None else ""
    if os.path.isdir("/dev/shm"):
        # Shared memory of its own: the host's /dev/shm outlives this worker.
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
              f"size={cfg['disk_mb']}m,mode=700{owner}")
    mount("tmpfs", cfg["home"], "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['disk_mb']}m,mode=700{owner}")


def read_only_everywhere(notes):
    """Every mount read-only, before the home is mounted: student code can then write nowhere
    else, not even as root in same-uid mode (the grader's code, results, other submissions)."""
    with open("/proc/self/mountinfo") as fh:
        mounts = [line.split() for line in fh]
    failed = []
    for fields in mounts:
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == "/proc" or point.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in fields[5].split(","):
            flags |= MOUNT_FLAGS.get(option, 0)
        try:
            mount(None, point, None, flags)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: under a hidden folder, so out of reach
                failed.append(point)
    if failed:
        notes.append(f"could not make {len(failed)} mount(s) read-only: {', '.join(failed[:3])}")


def prefer_oom_kill(notes):
    """Make the worker the kernel's first choice when memory runs out (Gradescope's 768 MB
    cgroup holds grader and worker): a submission that eats memory loses its worker, never
    the grader, even while the grader itself holds more. Raising the score needs no
    privilege; it is inherited by the worker's children and kept across exec."""
    try:
        write_file("/proc/self/oom_score_adj", "1000")
    except OSError as exc:
        notes.append(f"could not raise the worker's OOM score: {exc.strerror}")


def set_limits(cfg):
    mb = 1 << 20
    # "data" under CUDA, or with a CUDA build of torch (SandboxConfig.memory_rlimit).
    memory = resource.RLIMIT_DATA if cfg.get("memory_rlimit") == "data" else resource.RLIMIT_AS
    limits = {
        memory: cfg["memory_mb"] * mb,
        resource.RLIMIT_CPU: cfg["cpu_s"],
        resource.RLIMIT_FSIZE: cfg["file_mb"] * mb,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_CORE: 0,
    }
    if cfg.get("uid") is not None:
        # Counted per uid, and not enforced for root: only meaningful once we drop privileges.
        limits[resource.RLIMIT_NPROC] = cfg["nproc"]
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def drop_capabilities(notes):
    """Same-uid mode as root: empty the bounding set, so the exec'd worker has no capabilities
    (it cannot unmount the covers over hidden paths, nor read mode-000 files as their owner)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            notes.append(f"could not drop capability {cap}")
            return


def drop_privileges(cfg, notes):
    if os.getuid() != 0:
        return
    if cfg.get("uid") is None:
        drop_capabilities(notes)
        return
    os.setgroups([])
    os.setgid(cfg["gid"])
    os.setuid(cfg["uid"])


def main():
    cfg = json.loads(sys.argv[1])
    notes = []
    prefer_oom_kill(notes)
    new_pid_ns = cfg.get("namespaces", True) and enter_namespaces(cfg, notes)
    if new_pid_ns:
        child = os.fork()
        if child:
            # Stay as the namespace's parent only to pass on the exit status; if we are killed,
            # the worker (pid 1 inside) gets PDEATHSIG and the whole namespace goes with it.
            signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
            _, status = os.waitpid(child, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status)
                     else 128 + os.WTERMSIG(status))
        try:
            confine_filesystem(cfg, notes)
        except OSError as exc:
            notes.append(f"filesystem confinement failed: {exc.strerror}")
    elif cfg.get("uid") is not None and os.getuid() == 0:
        os.chown(cfg["home"], cfg["uid"], cfg["gid"])
    set_limits(cfg)
    drop_privileges(cfg, notes)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(cfg["home"])
    env = {
        "HOME": cfg["home"], "TMPDIR": cfg["home"], "PATH": "/usr/local/bin:/usr/bin:/bin",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
        "LANG": "C.UTF-8",
    }
    if cfg.get("device") == "cuda":
        # Deterministic cuBLAS kernels, so reruns on a GPU give identical scores.
        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    worker_cfg = json.dumps({"fd_in": cfg["fd_in"], "fd_out": cfg["fd_out"], "notes": notes,
                             "device": cfg.get("device", "cpu")})
    os.execve(cfg["python"], [cfg["python"], "-I", cfg["worker"], worker_cfg], env)


if __name__ == "__main__":
    main()

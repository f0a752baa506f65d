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
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MS_RDONLY, MS_REMOUNT, MS_MOVE = 1, 32, 8192
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
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
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
    notes.append("namespaces: mount, network, pid, ipc")
    return True


def confine_filesystem(cfg, notes):
    """An allow-list view of the file system: an empty root holding only what the worker
    needs (``cfg["allow"]``: interpreter, libraries, system files), read-only, plus its own
    script, home and devices. Nothing else exists for student code: other students' folders,
    results, released zips, other checkouts. ``cfg["hide"]`` then covers what must stay out
    of reach inside an allowed tree (the assignment's secrets, forbidden packages)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = cfg["root"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path in cfg["allow"]:
        bind_into(root, path, notes)
    for script in cfg.get("worker_files") or [cfg["worker"]]:  # worker.py and its two modules
        bind_into(root, script, notes)
    make_dirs(root, cfg["home"])
    make_dirs(root, "/tmp")
    populate_dev(root, cfg, notes)
    # proc before the pivot: in a user namespace the kernel allows a new proc only while the
    # old one is still fully visible.
    mount("proc", make_dirs(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    pivot_into(root)
    hide_paths(cfg, notes)
    read_only_everywhere(notes)
    owner = f",uid={cfg['uid']},gid={cfg['gid']}" if cfg.get("uid") is not None else ""
    # Shared memory of its own: the host's /dev/shm outlives this worker.
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['disk_mb']}m,mode=700{owner}")
    mount("tmpfs", cfg["home"], "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['disk_mb']}m,mode=700{owner}")


def make_dirs(root, path):
    target = root + path
    os.makedirs(target, mode=0o755, exist_ok=True)
    return target


def bind_into(root, path, notes):
    """Bind ``path`` (read-only later) at the same place under ``root``. A symbolic link is
    recreated as a link (merged /usr: /bin -> usr/bin), its target being allowed itself."""
    if not os.path.lexists(path):
        return
    target = root + path
    if os.path.islink(path):
        if not os.path.lexists(target):
            make_dirs(root, os.path.dirname(path))
            os.symlink(os.readlink(path), target)
        return
    if os.path.isdir(path):
        make_dirs(root, path)
    else:
        make_dirs(root, os.path.dirname(path))
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    try:
        mount(path, target, None, MS_BIND | MS_REC)
    except OSError as exc:
        notes.append(f"could not make {path} visible: {exc.strerror}")


DEVICES = ("null", "zero", "full", "random", "urandom")


def populate_dev(root, cfg, notes):
    """A /dev of a few harmless devices (and the GPU's where the worker may use it)."""
    dev = make_dirs(root, "/dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "size=64k,mode=755")
    names = list(DEVICES)
    if cfg.get("device") == "cuda":
        names += [n for n in sorted(os.listdir("/dev")) if n.startswith("nvidia")]
    for name in names:
        if os.path.exists("/dev/" + name) and not os.path.isdir("/dev/" + name):
            bind_into(root, "/dev/" + name, notes)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm")


SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
MNT_DETACH = 2


def pivot_into(root):
    """Make ``root`` the worker's / and detach the old one, so no path leads back to it."""
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    os.chdir(root)
    if number is not None and libc.syscall(number, b".", b".") == 0:
        _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    else:  # no pivot_root: move the new root over / (the old one is then unreachable by path)
        mount(root, "/", None, MS_MOVE)
        os.chroot(".")
    os.chdir("/")


def hide_paths(cfg, notes):
    for path in cfg["hide"]:
        try:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
            elif os.path.exists(path):
                mount("/dev/null", path, None, MS_BIND)
        except OSError as exc:
            notes.append(f"could not hide {path}: {exc.strerror}")


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


IPC_RMID = 0
# /proc/sysvipc file -> its column of object ids
SYSV_IPC = {"shm": "shmid", "sem": "semid", "msg": "msqid"}
# World-writable places a worker without namespaces can write to (with them: its own tmpfs).
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")


def sweep(uid):
    """Remove everything sandbox uid ``uid`` left (run as root): its processes (a child that
    becomes the uid kills every process of it: setsid daemons escape any process group), its
    SysV IPC objects (without an IPC namespace shared memory outlives the worker, readable by
    the next submission under this uid) and its files in shared temporary folders."""
    child = os.fork()
    if child == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(child, 0)
    for kind, ident in sysv_ipc_objects(uid):
        if kind == "shm":
            libc.shmctl(ident, IPC_RMID, None)
        elif kind == "sem":
            libc.semctl(ident, 0, IPC_RMID)
        else:
            libc.msgctl(ident, IPC_RMID, None)
    for folder in SHARED_TMP:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    remove_tree(entry.path)
            except OSError:
                pass


def remove_tree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            remove_tree(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


def sysv_ipc_objects(uid):
    """(kind, id) of the SysV IPC objects owned or created by ``uid`` (this IPC namespace)."""
    found = []
    for kind, id_column in SYSV_IPC.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                header, *rows = [line.split() for line in fh]
        except (OSError, ValueError):
            continue
        columns = {name: i for i, name in enumerate(header)}
        for row in rows:
            try:
                if uid in (int(row[columns["uid"]]), int(row[columns["cuid"]])):
                    found.append((kind, int(row[columns[id_column]])))
            except (KeyError, IndexError, ValueError):
                continue
    return found


def read_files(cfg):
    """The assignment's data files, read with the grader's rights (they may sit in a folder
    the worker must never see)."""
    files = []
    for name, source in cfg.get("files", []):
        with open(source, "rb") as fh:
            files.append((name, fh.read()))
    return files


def write_files(home, files):
    """Into the worker's home, owned by the grader's uid and read-only: the notebook reads
    ``pd.read_csv("data.csv")`` as it did in Jupyter, and cannot change what a later
    restart sees."""
    for name, data in files:
        target = os.path.join(home, name)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def supervise(child, cfg):
    """Stay as the worker's parent: pass its exit status on, and if the grader dies first
    (SIGTERM, our parent-death signal), kill the worker and sweep its uid. Inside a pid
    namespace the worker is its init, so everything it started goes with it; without one,
    the sweep is what removes setsid daemons and IPC objects."""
    def grader_died(*_):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
        if cfg.get("uid") is not None:
            sweep(cfg["uid"])
        os._exit(137)

    for fd in (cfg["fd_in"], cfg["fd_out"]):  # the grader sees EOF when the worker dies
        os.close(fd)
    signal.signal(signal.SIGTERM, grader_died)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if cfg.get("grader_pid") and os.getppid() != cfg["grader_pid"]:
        grader_died()
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status)
             else 128 + os.WTERMSIG(status))


def main():
    if sys.argv[1] == "--sweep":
        sweep(int(sys.argv[2]))
        return
    cfg = json.loads(sys.argv[1])
    # Die with the grader: a killed grader must take its worker (and, through the pid
    # namespace whose parent this is, everything the worker started) with it.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if cfg.get("grader_pid") and os.getppid() != cfg["grader_pid"]:
        os._exit(1)  # the grader died before the line above
    notes = []
    files = read_files(cfg)  # now: confinement may leave their folders out of reach
    prefer_oom_kill(notes)
    new_pid_ns = cfg.get("namespaces", True) and enter_namespaces(cfg, notes)
    if new_pid_ns or cfg.get("uid") is not None:
        child = os.fork()
        if child:
            supervise(child, cfg)
    if new_pid_ns:
        try:
            confine_filesystem(cfg, notes)
        except OSError as exc:
            notes.append(f"filesystem confinement failed ({exc}): only file modes protect "
                         "other files, and the start-up probe checks them")
    elif cfg.get("uid") is not None and os.getuid() == 0:
        os.chown(cfg["home"], cfg["uid"], cfg["gid"])
    write_files(cfg["home"], files)
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

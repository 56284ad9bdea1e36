"""The sandbox server's other kind of run: write source files, then compile and run them as commands.

Loaded by ``sandbox.py`` from this file (standard library only, like the server). It runs inside the program's
process, after the namespaces, the read-only mounts, the rlimits and the privilege drop are in place, so every
compiler and every compiled program inherits all of them. Each step is a child process in its own process
group with its own wall-clock budget and CPU limit; a step that outlives its budget is killed with its group
and the run ends there (the namespace's PID 1 then kills anything else it left).

A request carries ``files`` (name -> text, written into the private temporary directory), ``copies`` (name ->
a host file, read before the privilege drop, so the sandbox uid needs no access to it) and ``steps``: each ``argv``,
``timeout``, ``compile`` (a failure is a compile error), ``env`` and ``fail_output`` (a regular expression: a
match in the step's captured ``capture`` stream fails the run even when it exits 0, as the paper repository's
C# and JavaScript harnesses judge).
"""

import contextlib
import ctypes
import os
import re
import resource
import select
import signal

PR_SET_DUMPABLE = 4
TAIL = 300  # characters of a failing step's output quoted in the verdict


def read_copies(request: dict) -> dict[str, bytes]:
    """The host files the request copies in, read while the process may still read them."""
    copies = {}
    for name, host_path in request.get("copies", {}).items():
        with open(host_path, "rb") as f:
            copies[name] = f.read()
    return copies


def write_files(request: dict, copies: dict[str, bytes]) -> None:
    for name, text in request.get("files", {}).items():
        with open(name, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
    for name, data in copies.items():
        with open(name, "wb") as f:
            f.write(data)


def start(step: dict, env: dict, capture_w: int | None) -> int:
    pid = os.fork()
    if pid != 0:
        return pid
    try:
        os.setpgid(0, 0)
        cpu = max(1, int(step["timeout"]) + 1)
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (min(cpu, soft), min(cpu + 1, hard)))
        if capture_w is not None:
            if step.get("capture", "stderr") == "both":
                os.dup2(capture_w, 1)
            os.dup2(capture_w, 2)
            os.close(capture_w)
        os.execvpe(step["argv"][0], step["argv"], {**env, **step.get("env", {})})
    except BaseException as e:  # the command is missing or cannot start: that step's failure
        os.write(2, f"cannot run {step['argv'][0]}: {e}\n".encode())
    os._exit(127)


def wait(pid: int, capture_r: int | None, timeout: float) -> tuple[int | None, bytes]:
    """Relay the captured stream to stderr while the step runs; its wait status (None on timeout) and the text."""
    pidfd = os.pidfd_open(pid)
    deadline = os.times().elapsed + timeout
    captured, status = bytearray(), None
    watched = [pidfd] + ([capture_r] if capture_r is not None else [])
    while status is None:
        remaining = deadline - os.times().elapsed
        if remaining <= 0:
            break
        ready, _, _ = select.select(watched, [], [], remaining)
        if pidfd in ready:
            status = os.waitpid(pid, 0)[1]
        if capture_r is not None and capture_r in ready:
            chunk = os.read(capture_r, 1 << 16)
            if chunk:
                os.write(2, chunk)
                captured = (captured + chunk)[-(1 << 20) :]
            else:
                watched.remove(capture_r)
    if status is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    elif capture_r is not None and capture_r in watched:
        os.set_blocking(capture_r, False)  # a background child may still hold the pipe open
        try:
            while chunk := os.read(capture_r, 1 << 16):
                os.write(2, chunk)
                captured = (captured + chunk)[-(1 << 20) :]
        except BlockingIOError:
            pass
    os.close(pidfd)
    return status, bytes(captured)


def run_steps(request: dict, copies: dict[str, bytes], env: dict, token: str, report) -> None:
    """Write the files and run each step in turn; report the verdict on the private channel. Never returns."""
    os.set_inheritable(3, False)  # the report channel is the server's alone, never a step's
    try:
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no step may read this process's memory (token)
        write_files(request, copies)
    except BaseException as e:
        report({"error": f"could not write the program's files: {e!r}"})
        os._exit(70)
    for step in request["steps"]:
        capture_r, capture_w = os.pipe() if step.get("fail_output") is not None else (None, None)
        pid = start(step, env, capture_w)
        if capture_w is not None:
            os.close(capture_w)
        status, captured = wait(pid, capture_r, step["timeout"])
        if capture_r is not None:
            os.close(capture_r)
        kind = "compile" if step.get("compile") else "run"
        argv = step["argv"]
        tool = argv[2].split()[0] if argv[:2] == ["bash", "-c"] else argv[0]  # a shell line: its first command
        if status is None:
            report({"exc": "StepTimeout", "msg": f"{kind} ({tool}) still running after {step['timeout']:g} s"})
            os._exit(1)
        if os.WIFSIGNALED(status):
            report({"exc": "StepSignal", "signal": os.WTERMSIG(status), "compile": bool(step.get("compile"))})
            os._exit(1)
        code = os.WEXITSTATUS(status)
        if code != 0:
            name = "CompileError" if step.get("compile") else "StepFailed"
            report({"exc": name, "msg": f"{tool} exited with status {code}", "code": code})
            os._exit(1)
        text = captured.decode(errors="replace")
        pattern = step.get("fail_output")
        if pattern is not None and re.search(pattern, text):
            report({"exc": "StepFailed", "msg": f"its output fails the check ({pattern}): {text.strip()[:TAIL]}"})
            os._exit(1)
    report({"ok": token})
    os._exit(0)

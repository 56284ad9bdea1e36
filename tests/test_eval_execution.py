"""The execution sandbox against adversarial programs: each ends as a failed sample with a clear status,
leaves no process running and no file outside its temporary directory changed."""

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from dslib.eval.execution import Limits, Status, classify, default_sandbox, isolation, run_program, run_programs
from dslib.eval.humaneval import check_program, load_problems

needs_namespaces = pytest.mark.skipif(
    not isolation().namespaces, reason=f"this kernel gives the sandbox no namespaces: {isolation().describe()}"
)
needs_process_limit = pytest.mark.skipif(
    not isolation().process_limit, reason=f"a fork bomb would not be contained here: {isolation().describe()}"
)


def command_lines() -> dict[int, list[str]]:
    """Every live process's argv, read from /proc (zombies, whose argv is empty, left out)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except OSError:
                continue
            if argv != [b""]:
                found[int(entry)] = [a.decode(errors="replace") for a in argv]
    return found


def sandbox_processes() -> list[tuple[int, list[str]]]:
    """Processes of this test process's sandbox runs (they carry our pid as the server's last argument)."""
    me, server = str(os.getpid()), default_sandbox().server_pid
    return [
        (pid, argv)
        for pid, argv in command_lines().items()
        if pid != server and len(argv) >= 2 and argv[-1] == me and argv[-2].endswith("sandbox.py")
    ]


def processes_with(marker: str) -> list[tuple[int, list[str]]]:
    return [(pid, argv) for pid, argv in command_lines().items() if marker in " ".join(argv)]


def assert_nothing_survives(marker: str | None = None, grace: float = 3.0) -> None:
    """No run's process is left (a supervisor may take a moment to exit after answering)."""
    deadline = time.monotonic() + grace
    while True:
        left = sandbox_processes() + (processes_with(marker) if marker else [])
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"processes survived the sandbox: {left}"


@pytest.fixture(autouse=True)
def no_survivors():
    yield
    assert_nothing_survives()


def test_a_passing_program_reports_its_output_and_may_use_its_temporary_directory():
    result = run_program("import os\nopen('scratch.txt', 'w').write('ok')\nprint(os.listdir('.'))", timeout=5)
    assert result.passed and result.status == Status.PASSED
    assert "scratch.txt" in result.output


@pytest.mark.parametrize(
    ("program", "status", "detail"),
    [
        ("assert 1 + 1 == 3, 'arithmetic'", Status.FAILED, "AssertionError: arithmetic"),
        ("def f(:\n    pass", Status.FAILED, "SyntaxError"),
        ("import no_such_module_anywhere", Status.FAILED, "ModuleNotFoundError"),
        ("input()", Status.FAILED, "EOFError"),  # stdin is /dev/null: reading it ends at once, never blocks
        ("[open('/dev/null') for _ in range(1000)]", Status.FAILED, "Too many open files"),
    ],
)
def test_failures_are_classified(program, status, detail):
    result = run_program(program, timeout=5, limits=Limits(open_files=32))
    assert (result.passed, result.status) == (False, status)
    assert detail in result.detail


def test_stdin_reads_as_empty():
    assert run_program("import sys\nassert sys.stdin.read() == ''", timeout=5).passed


@pytest.mark.parametrize(
    ("exit_code", "status"),
    [
        ("import sys\nsys.exit(0)", Status.EARLY_EXIT),
        ("exit()", Status.EARLY_EXIT),
        ("raise SystemExit", Status.EARLY_EXIT),
        ("import os\nos._exit(0)", Status.EARLY_EXIT),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", Status.KILLED),
    ],
)
def test_leaving_before_the_tests_is_not_a_pass(exit_code, status):
    problem = load_problems()["HumanEval/0"]
    completion = "    return True\n" + exit_code + "\n"  # a wrong solution that would fail the tests
    result = run_program(check_program(problem, completion), timeout=5)
    assert (result.passed, result.status) == (False, status), result


def test_a_forged_success_message_is_not_a_pass():
    program = "import os, json\nos.write(3, json.dumps({'ok': 'a guess'}).encode() + b'\\n')\nos._exit(0)"
    assert run_program(program, timeout=5).status == Status.EARLY_EXIT


def test_infinite_loop_times_out():
    result = run_program("while True:\n    pass", timeout=1.0)
    assert (result.passed, result.status) == (False, Status.TIMEOUT)
    assert 1.0 <= result.seconds < 4.0


def test_cpu_time_limit():
    result = run_program("while True:\n    pass", timeout=20.0, limits=Limits(cpu_seconds=1))
    assert (result.passed, result.status) == (False, Status.CPU_LIMIT)
    assert result.seconds < 15.0


@needs_process_limit
def test_fork_bomb_is_contained_and_killed():
    # Root is exempt from RLIMIT_NPROC; the run's own uid (or user namespace) makes the limit bind.
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = run_program(bomb, timeout=2.0, limits=Limits(processes=32))
    assert (result.passed, result.status) == (False, Status.TIMEOUT)


@needs_process_limit
def test_fork_failure_is_a_clean_failure():
    result = run_program("import os\nwhile True:\n    os.fork()", timeout=5.0, limits=Limits(processes=16))
    assert result.status == Status.FAILED and "BlockingIOError" in result.detail


@needs_namespaces
def test_setsid_children_die_with_the_run():
    marker = f"3600.{random.randrange(10**8):08d}"  # a unique, valid `sleep` argument to look for
    program = textwrap.dedent(f"""
        import os, subprocess, time
        subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
        child = os.fork()
        if child == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        os.waitpid(child, 0)
        time.sleep(0.2)
    """)
    result = run_program(program, timeout=5.0)
    assert (result.passed, result.status) == (False, Status.LEFT_PROCESSES), result
    assert_nothing_survives(marker)


@pytest.mark.parametrize(
    "bomb", ["x = bytearray(1 << 40)", "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))"]
)
def test_memory_bomb(bomb):
    result = run_program(bomb, timeout=10.0, limits=Limits(memory_mb=256))
    assert (result.passed, result.status) == (False, Status.MEMORY_LIMIT)


def test_output_flood_is_cut_short():
    result = run_program("while True:\n    print('x' * 1000)", timeout=10.0, limits=Limits(output_kb=64))
    assert (result.passed, result.status) == (False, Status.OUTPUT_LIMIT)
    assert result.seconds < 5.0


def test_file_size_limit():
    program = "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (16 << 20))"
    result = run_program(program, timeout=10.0, limits=Limits(file_mb=8))
    assert (result.passed, result.status) == (False, Status.FILE_LIMIT)


@pytest.fixture
def canaries(tmp_path):
    """Canary files outside the sandbox's directory, writable by anyone as far as permission bits go."""
    shared = Path(tempfile.mkdtemp(prefix="dslib-canary-", dir="/var/tmp"))
    shared.chmod(0o777)
    tmp_path.chmod(0o777)
    paths = [shared / "canary.txt", tmp_path / "canary.txt"]
    for path in paths:
        path.write_text("canary")
        path.chmod(0o666)
    yield paths
    shutil.rmtree(shared)


@needs_namespaces
@pytest.mark.parametrize(
    "attack",
    [
        "os.remove(PATH)",
        "open(PATH, 'w').write('overwritten')",
        "os.rename(PATH, PATH + '.moved')",
        "shutil.rmtree(os.path.dirname(PATH))",
        "os.chmod(PATH, 0)",
    ],
)
def test_files_outside_the_temporary_directory_are_untouched(canaries, attack):
    for path in canaries:
        program = f"import os, shutil\nPATH = {str(path)!r}\n{attack}"
        result = run_program(program, timeout=5.0)
        assert (result.passed, result.status) == (False, Status.FAILED), (path, result)
        assert path.read_text() == "canary" and (path.stat().st_mode & 0o777) == 0o666


@needs_namespaces
def test_no_network():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        port = server.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')"
        result = run_program(program, timeout=5.0)
        assert (result.passed, result.status) == (False, Status.FAILED)
        assert "OSError" in result.detail or "Error" in result.detail
        with pytest.raises(TimeoutError):
            server.accept()


@needs_namespaces
def test_signalling_the_parent_or_the_evaluator_fails():
    server = default_sandbox().server_pid
    program = textwrap.dedent(f"""
        import os, signal
        try:
            os.kill(os.getppid(), signal.SIGKILL)
        except PermissionError:
            pass
        os.kill({os.getpid()}, signal.SIGTERM)
        os.kill({server}, signal.SIGKILL)
    """)
    result = run_program(program, timeout=5.0)
    assert (result.passed, result.status) == (False, Status.FAILED)
    assert default_sandbox().server_pid == server and os.path.exists(f"/proc/{server}")
    assert run_program("pass", timeout=5.0).passed


def test_parallel_runs_survive_misbehaving_samples():
    programs = ["pass", "while True:\n    pass", "import os\nos._exit(0)", "while True:\n    print('x' * 999)", "pass"]
    results = run_programs(programs, timeout=1.5, workers=2, limits=Limits(output_kb=64), progress=False)
    assert [r.status for r in results] == [
        Status.PASSED,
        Status.TIMEOUT,
        Status.EARLY_EXIT,
        Status.OUTPUT_LIMIT,
        Status.PASSED,
    ]


def test_classify_names_every_ending():
    base = {"timeout": False, "flood": False, "output": "", "seconds": 0.1}
    assert classify({**base, "exit": 0, "ok": True}, 1).status == Status.PASSED
    assert classify({**base, "exit": 0, "ok": True, "leftover": 2}, 1).status == Status.LEFT_PROCESSES
    assert classify({**base, "exit": 152}, 1).status == Status.CPU_LIMIT  # 128 + SIGXCPU
    assert classify({**base, "exit": -9}, 1).status == Status.KILLED
    assert classify({**base, "exit": 3}, 1).status == Status.EARLY_EXIT
    assert classify({"error": "x"}, 1).status == Status.SANDBOX_ERROR


UNPRIVILEGED_SCRIPT = """
import json, os, sys
from dslib.eval.execution import Limits, Sandbox, Status
canary = sys.argv[1]
sandbox = Sandbox()
results = {
    "passes": sandbox.run("import math\\nassert math.gcd(4, 6) == 2", 5).status,
    "canary": sandbox.run(f"open({canary!r}, 'w').write('overwritten')", 5).status,
    "fork_bomb": sandbox.run("import os\\nwhile True:\\n    os.fork()", 5, Limits(processes=16)).status,
}
print(json.dumps({"mode": sandbox.isolation.mode, **results}))
sandbox.close()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unprivileged_user_gets_the_same_isolation_through_a_user_namespace(tmp_path):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None or subprocess.run([python, "-c", "import sys; assert sys.version_info >= (3, 10)"]).returncode:
        pytest.skip("no system python >= 3.10 that an unprivileged user can run")
    nobody = 65534
    shared = Path(tempfile.mkdtemp(prefix="dslib-canary-", dir="/var/tmp"))
    try:
        canary = shared / "canary.txt"
        canary.write_text("canary")
        os.chown(shared, nobody, nobody)
        os.chown(canary, nobody, nobody)  # the user's own file: only the read-only mount protects it
        root = Path(__file__).resolve().parents[1]
        evaluator = subprocess.Popen(
            [python, "-c", UNPRIVILEGED_SCRIPT, str(canary)],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
            cwd="/",
            user=nobody,
            group=nobody,
            extra_groups=[],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdout, stderr = evaluator.communicate(timeout=60)
        if evaluator.returncode != 0:
            pytest.skip(f"the unprivileged run could not start here: {stderr[-500:]}")
        report = json.loads(stdout.strip().splitlines()[-1])
        if report["mode"] != "userns":
            pytest.skip(f"user namespaces are not available to unprivileged users here (mode {report['mode']})")
        assert report["passes"] == Status.PASSED
        assert report["canary"] == Status.FAILED and canary.read_text() == "canary"
        assert report["fork_bomb"] == Status.FAILED
    finally:
        shutil.rmtree(shared)
    tag = str(evaluator.pid)  # that evaluator's runs carry its pid as their last argument
    assert not [pid for pid, argv in command_lines().items() if argv[-1] == tag]

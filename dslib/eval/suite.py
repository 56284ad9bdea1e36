"""The paper's evaluation suite for any checkpoint (DeepSeek-Coder §4, Tables 3, 5 and 8).

    python -m dslib.eval CHECKPOINT --tasks table3|table5|table8|NAME,NAME... [--instruct] [--limit N]
    python -m dslib.eval --score-only runs/ckpt/generations.jsonl --tasks table3

Generation and scoring are apart, as in the paper's repository: every generation is appended to
``generations.jsonl`` the moment its batch is decoded (a crash loses at most one batch, and a rerun with the
same ``--out`` continues where it stopped), and scoring reads that file, so saved generations can be
re-scored without a model. Scoring writes ``results.jsonl`` (each sample with its completion and verdict) and
``table.md`` (ours beside the paper's row for the released model nearest in size).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from dslib import paper
from dslib.config import EvalConfig
from dslib.eval.generation import complete, load_hf_model, subset
from dslib.eval.metrics import mean_pass_at_k
from dslib.eval.tasks import TASKS, Task, TaskNotBuilt, get_task
from dslib.jsonl import read_jsonl

log = logging.getLogger(__name__)

RECORD_FIELDS = ("task", "task_id", "completion_id", "instruct", "generation")
CHUNK_BATCHES = 4  # batches generated between two appends to the generations file
NOT_SHIPPED = {"TabMWP": "its data is not in the source snapshot of the paper's repository"}


def load_task(name: str) -> tuple[Task | None, str | None]:
    """``(task, None)`` when the task can run here, else ``(None, why not)`` with the install command."""
    try:
        task = get_task(name)
    except TaskNotBuilt as err:
        return None, str(err)
    missing = task.unavailable()
    return (None, missing) if missing else (task, None)


def selected(task: Task, limit: int | None) -> list[dict]:
    """The task's problems, ``limit`` of them spread evenly over the benchmark (all when None)."""
    return subset(task.problems(), limit)


def read_generations(path: str | Path) -> list[dict]:
    """The records of a generations file; a malformed line is a clear error, except a cut-off last line.

    A run killed while writing leaves its last line incomplete: that line is skipped with a warning (its
    sample is generated again on resume); any other unreadable line stops with its number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no generations file at {path}")
    records = read_jsonl(path, cut_last_ok=True)
    for number, record in enumerate(records, 1):
        missing = [f for f in RECORD_FIELDS if f not in record]
        if missing or not isinstance(record.get("generation"), str):
            raise ValueError(f"{path}: record {number}: a generation record needs {RECORD_FIELDS} (missing {missing})")
    return records


def _key(record: dict) -> tuple:
    return record["task"], str(record["task_id"]), record["completion_id"], bool(record["instruct"])


def generate(
    model,
    tokenizer,
    names: Sequence[str],
    path: str | Path,
    config: EvalConfig | None = None,
    instruct: bool = False,
    limit: int | None = None,
    paper_lengths: bool = True,
    meta: dict | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """Generate every missing sample of the tasks ``names`` and append each to ``path``; returns skipped tasks.

    Samples already in ``path`` (same task, problem, sample number and mode) are kept and not generated
    again. With ``paper_lengths`` each task uses its repository's input and output lengths, else
    ``config``'s. Instruct-only tasks (LeetCode) are prompted in the chat format even for a base model. The
    returned dict maps each task that could not be generated to why (``unavailable: ...``).
    """
    config = config or EvalConfig()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {_key(r) for r in read_generations(path)} if path.exists() else set()
    eot = tokenizer.token_to_id("<|EOT|>") if hasattr(tokenizer, "token_to_id") else None
    skipped = {}
    for name in names:
        task, why = load_task(name)
        if task is None:
            skipped[name] = f"unavailable: {why}"
            continue
        chat = instruct or task.instruct_only
        if any(saved == name and mode != chat for saved, _, _, mode in done):
            raise ValueError(
                f"{path} holds {name} generations in the {'base' if chat else 'chat'} format; "
                "score them apart: choose another output folder"
            )
        todo = [
            {
                "task": name,
                "task_id": p["task_id"],
                "completion_id": j,
                "instruct": chat,
                "prompt": task.prompt(p, chat),
            }
            for p in selected(task, limit)
            for j in range(config.n_samples)
        ]
        todo = [r for r in todo if _key(r) not in done]
        if not todo:
            continue
        settings = config
        if paper_lengths:
            settings = dataclasses.replace(
                config,
                max_new_tokens=task.max_new_tokens_instruct if chat else task.max_new_tokens,
                max_input_tokens=task.max_input_tokens,
            )
        # A chat reply ends at <|EOT|> (the Instruct models' eos); a base continuation at the task's stop words.
        stop = ((eot,) if eot is not None else ()) if chat else task.stop
        step = settings.batch_size * CHUNK_BATCHES
        with open(path, "a", encoding="utf-8") as out, tqdm(total=len(todo), desc=name, disable=not progress) as bar:
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                texts = complete(model, tokenizer, [r["prompt"] for r in chunk], settings, stop, progress=False)
                for record, text in zip(chunk, texts, strict=True):
                    out.write(json.dumps({**record, "generation": text, **(meta or {})}) + "\n")
                out.flush()
                bar.update(len(chunk))
    return skipped


def score(
    records: Iterable[dict],
    names: Sequence[str] | None = None,
    timeout: float | None = None,
    workers: int = 2,
    progress: bool = True,
) -> tuple[dict[str, dict], list[dict]]:
    """Check saved generations: ``({task: scores}, per-sample results)``.

    ``scores`` holds ``pass@1`` (over the problems scored), ``problems``, ``samples`` and per-group pass@1
    (LeetCode's difficulties), or ``unavailable``/``error`` with the reason: a task that cannot be scored here
    never shows as 0%. ``names`` limits the tasks (default: every task in the records).
    """
    by_task = defaultdict(list)
    for record in records:
        by_task[record["task"]].append(record)
    names = list(names) if names is not None else [n for n in TASKS if n in by_task]
    scores, results = {}, []
    for name in names:
        task, why = load_task(name)
        if task is None:
            scores[name] = {"unavailable": why}
            continue
        if not by_task.get(name):
            scores[name] = {"error": "no generations saved for this task"}
            continue
        try:
            problems = {str(p["task_id"]): p for p in task.problems()}
        except (ValueError, KeyError, FileNotFoundError) as err:
            scores[name] = {"error": str(err)}
            continue
        unknown = [r["task_id"] for r in by_task[name] if str(r["task_id"]) not in problems]
        if unknown:
            scores[name] = {"error": f"{len(unknown)} generations name unknown problems, e.g. {unknown[0]!r}"}
            continue
        samples = by_task[name]
        if len({bool(r["instruct"]) for r in samples}) > 1:
            scores[name] = {"error": "generations in both the base and the chat format; score them apart"}
            continue
        pairs = [(problems[str(r["task_id"])], _postprocess(task, problems[str(r["task_id"])], r)) for r in samples]
        verdicts = task.check_all(pairs, timeout=timeout, workers=workers, progress=progress)
        outcomes, groups = defaultdict(list), defaultdict(lambda: defaultdict(list))
        for r, (problem, completion), v in zip(samples, pairs, verdicts, strict=True):
            outcomes[str(r["task_id"])].append(v.passed)
            group = task.group(problem)
            if group is not None:
                groups[group][str(r["task_id"])].append(v.passed)
            results.append(
                {
                    "task": name,
                    "task_id": r["task_id"],
                    "completion_id": r["completion_id"],
                    "instruct": r["instruct"],
                    "completion": completion,
                    "passed": v.passed,
                    "status": v.status,
                    "detail": v.detail,
                }
            )
        scores[name] = {
            **mean_pass_at_k(outcomes, (1,)),
            "problems": len(outcomes),
            "samples": len(samples),
            "instruct": any(r["instruct"] for r in samples),
            "groups": {g: mean_pass_at_k(o, (1,))["pass@1"] for g, o in sorted(groups.items())},
        }
    return scores, results


def _postprocess(task: Task, problem: dict, record: dict) -> str:
    """The completion of a saved record; a generation the task cannot parse scores as an empty completion."""
    try:
        return task.postprocess(problem, record["generation"], bool(record["instruct"]))
    except Exception as err:  # a malformed generation is that sample's failure, not the run's
        log.warning("%s %s: generation not parsed (%s); scored as empty", task.name, record["task_id"], err)
        return ""


def table_rows(scores: dict[str, dict], parameters: int | None, instruct: bool = False) -> list[dict]:
    """Rows ``task``, ``ours`` (pass@1 %), ``paper`` (%), ``source``, ``note`` beside the nearest released model."""
    size = paper.nearest_size(parameters) if parameters else "1.3B"
    rows = []
    for name, s in scores.items():
        chat = s.get("instruct", instruct) or name.startswith("leetcode")
        table, column = paper.TASK_COLUMNS[name]
        model = f"DeepSeek-Coder-{'Instruct' if chat else 'Base'} {size}"
        row = {"task": name, "paper": paper.task_number(name, size, chat), "source": f"{table.source}, {model}"}
        if "unavailable" in s:
            rows.append({**row, "ours": f"unavailable: {s['unavailable']}", "note": ""})
            continue
        if "error" in s:
            rows.append({**row, "ours": f"error: {s['error']}", "note": ""})
            continue
        note = f"{s['problems']} problems, {s['samples']} samples"
        rows.append({**row, "ours": round(100 * s["pass@1"], 1), "note": note})
        for group, value in s.get("groups", {}).items():
            rows.append(
                {
                    "task": f"{name} ({group})",
                    "ours": round(100 * value, 1),
                    "paper": paper.task_number(name, size, chat, group),
                    "source": f"{table.source}, {model}",
                    "note": "",
                }
            )
    languages = [n for n in paper.TASK_COLUMNS if n.startswith("humaneval-")]
    if all("pass@1" in scores.get(n, {}) for n in languages):  # Table 3's Avg: the eight HumanEval languages
        chat = scores["humaneval-python"].get("instruct", instruct)
        model = f"DeepSeek-Coder-{'Instruct' if chat else 'Base'} {size}"
        mean = sum(scores[n]["pass@1"] for n in languages) / len(languages)
        avg = paper.TABLE3.get(model, "Avg")
        rows.append(
            {
                "task": "humaneval (8-language mean)",
                "ours": round(100 * mean, 1),
                "paper": avg,
                "source": "[P] Table 3 Avg",
            }
        )
    if any(paper.TASK_COLUMNS[n][0] is paper.TABLE8 for n in scores):
        model = f"DeepSeek-Coder-Base {size}"
        for column, why in NOT_SHIPPED.items():
            value = paper.TABLE8.get(model, column)
            rows.append(
                {"task": column.lower(), "ours": f"unavailable: {why}", "paper": value, "source": "[P] Table 8"}
            )
    return rows


def write_scores(directory: str | Path, scores: dict, results: list[dict], rows: list[dict], table: str) -> None:
    """``results.jsonl`` (every sample's verdict), ``scores.json`` and ``table.md`` in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "results.jsonl", "w", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in results)
    (directory / "scores.json").write_text(json.dumps({"scores": scores, "rows": rows}, indent=2))
    (directory / "table.md").write_text(table + "\n")


def evaluate(
    checkpoint: str | Path | None,
    names: Sequence[str] | None,
    out: str | Path,
    config: EvalConfig | None = None,
    instruct: bool = False,
    limit: int | None = None,
    paper_lengths: bool = True,
    device: str | None = None,
    dtype=None,
    score_only: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Generate (unless ``score_only`` names a generations file) and score: ``{"scores", "results", "rows"}``.

    Generations go to ``out/generations.jsonl`` (appended, resumable); nothing is scored before they are saved.
    """
    config = config or EvalConfig()
    out = Path(out)
    skipped = {}
    if score_only is None:
        checkpoint = Path(checkpoint)
        for needed in ("config.json", "tokenizer.json"):
            if not (checkpoint / needed).is_file():
                raise FileNotFoundError(
                    f"{checkpoint} has no {needed}: a checkpoint folder needs the model and its tokenizer"
                )
        generations = out / "generations.jsonl"
        if generations.exists():
            others = {r.get("checkpoint") for r in read_generations(generations)} - {str(checkpoint), None}
            if others:
                raise ValueError(f"{generations} holds generations of {others.pop()}; choose another output folder")
        model, tokenizer = load_hf_model(checkpoint, device, dtype)
        meta = {"checkpoint": str(checkpoint), "parameters": model.num_parameters()}
        skipped = generate(model, tokenizer, names, generations, config, instruct, limit, paper_lengths, meta, progress)
        del model
    else:
        generations = Path(score_only)
    records = read_generations(generations)
    scores, results = score(records, names, None, config.workers, progress)
    for name, why in skipped.items():
        scores[name] = {"unavailable": why.removeprefix("unavailable: ")}
    parameters = next((r["parameters"] for r in records if r.get("parameters")), None)
    rows = table_rows(scores, parameters, instruct)
    return {
        "scores": scores,
        "results": results,
        "rows": rows,
        "parameters": parameters,
        "generations": str(generations),
    }


def harness_check(names: Sequence[str] | None = None, workers: int = 2, progress: bool = True) -> list[dict]:
    """Known-correct programs through each task's ``check``: rows ``task``, ``checked``, ``passed``, ``failing``.

    Covers the tasks that ship a reference (HumanEval's canonical solutions, MBPP's reference code, GSM-Hard's
    PAL programs). Everything must pass except MBPP task 367, whose asserts need the ``test_setup_code`` that
    the repository's harness never runs.
    """
    rows = []
    for name in names or TASKS:
        task, why = load_task(name)
        if task is None or not hasattr(task, "reference"):
            continue
        pairs = [(p, task.reference(p)) for p in task.problems()]
        pairs = [(p, code) for p, code in pairs if code is not None]
        if not pairs:
            continue
        verdicts = task.check_all(pairs, workers=workers, progress=progress)
        failing = [str(p["task_id"]) for (p, _), v in zip(pairs, verdicts, strict=True) if not v.passed]
        passed = len(pairs) - len(failing)
        rows.append({"task": name, "checked": len(pairs), "passed": passed, "failing": ", ".join(failing) or "–"})
    return rows


def harness_rows(checks: list[dict]) -> list[dict]:
    """:func:`harness_check`'s rows as result rows (``metric``, ``ours``, ``paper``, ``source``): pass rates."""
    return [
        {
            "metric": f"{c['task']} known-correct programs pass rate (harness check)",
            "ours": round(c["passed"] / c["checked"], 4),
            "paper": round(499 / 500, 4) if c["task"] == "mbpp" else 1.0,  # MBPP 367: see harness_check
            "source": "reference solutions shipped with the benchmark",
        }
        for c in checks
    ]


def task_summary(names: Sequence[str] | None = None) -> list[dict]:
    """One row per task: where the paper reports it, its settings, and whether it can run here (and if not, why)."""
    rows = []
    for name in names or TASKS:
        table, column = paper.TASK_COLUMNS[name]
        task, why = load_task(name)
        row = {"task": name, "paper column": f"{table.source} {column}"}
        if task is None:
            rows.append({**row, "status": f"unavailable: {why}"})
            continue
        rows.append(
            {
                **row,
                "problems": len(task.problems()),
                "stop": ", ".join(repr(s) for s in task.stop) or "EOT",
                "max new tokens": task.max_new_tokens,
                "timeout s": task.timeout,
                "status": "Instruct prompt only" if task.instruct_only else "available",
            }
        )
    return rows

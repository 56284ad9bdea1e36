"""Cross-file code completion on held-out repositories, with BM25 retrieval (DeepSeek-Coder §4.3, Table 7).

Table 7 scores CrossCodeEval (Ding et al. 2023): line completions whose answer needs a name defined in
another file of the repository, with and without cross-file context retrieved by BM25. Its data archive
cannot be obtained here, so the benchmark is built the same way from the repositories the data pipeline
holds out of training (:mod:`dslib.data.repo_level`), and :func:`load_crosscodeeval` reads the official
JSONL for those who have it. Both come out as records of CrossCodeEval's schema (``prompt``,
``groundtruth``, ``right_context``, ``crossfile_context``, ``metadata``), which :func:`score` takes.

- A completion point is a line that uses a name taken, through an import the dependency parser resolves,
  from another file of the repository and not defined in the current file (:mod:`dslib.eval.names`: Python,
  then Java, JavaScript, TypeScript, C, C++, C#, Go, Rust and PHP).
- Retrieval follows CrossCodeEval: the other files in 10-line chunks (a 5-line sliding window), the last
  10 non-empty lines of the prefix as the query, Okapi BM25 as ``rank_bm25`` computes it, the top 5 that
  fit in 512 tokens, put before the prefix as comments headed by their paths.
- Metrics: exact match and edit similarity (``rapidfuzz``'s ``fuzz.ratio``, as CrossCodeEval's
  ``fuzzywuzzy``) of the first generated line, identifier exact match, and the model's mean loss on the
  ground-truth line in nats/token.
"""

from __future__ import annotations

import json
import keyword
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz
from tqdm.auto import tqdm

from dslib.artifacts import ensure, fingerprint, read_manifest, write_manifest
from dslib.config import CrossFileConfig, EvalConfig, Scale, resolve
from dslib.data import deps
from dslib.data.languages import detect_language
from dslib.data.pipeline import corpus_label, load_corpus
from dslib.eval.generation import complete, encode, load_hf_model, subset
from dslib.eval.likelihood import continuation_token_losses
from dslib.eval.names import LANGUAGES, file_uses
from dslib.eval.retrieval import Retriever, crossfile_text
from dslib.jsonl import read_jsonl
from dslib.paper import TABLE7
from dslib.tokenizer import encode_text, ensure_tokenizer, split_sample

BENCHMARK_FILE = "crossfile.jsonl"
FIELDS = ("prompt", "groundtruth", "right_context", "crossfile_context", "metadata")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_PYTHON_KEYWORDS = frozenset(keyword.kwlist + keyword.softkwlist + ["self", "cls"])
# The keywords and primitive types of the other languages the benchmark covers, left out of identifier matches.
_OTHER_KEYWORDS = frozenset(
    {
        "abstract", "as", "async", "await", "bool", "boolean", "break", "byte", "case", "catch", "char", "class",
        "const", "continue", "crate", "default", "defer", "delete", "do", "double", "dyn", "echo", "else", "enum",
        "export", "extends", "extern", "false", "final", "finally", "float", "fn", "for", "foreach", "func", "function",
        "go", "if", "impl", "implements", "import", "in", "instanceof", "int", "interface", "internal", "let", "long",
        "loop", "match", "mod", "mut", "namespace", "new", "nil", "null", "override", "package", "private", "protected",
        "pub", "public", "readonly", "ref", "return", "self", "short", "signed", "sizeof", "static", "string", "struct",
        "super", "switch", "this", "throw", "throws", "trait", "true", "try", "type", "typedef", "typeof", "uint",
        "unsafe", "unsigned", "use", "using", "var", "virtual", "void", "volatile", "where", "while", "yield"
    }
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Completion points


def completion_points(
    files: Mapping[str, str], prefix_lines: int = 200, right_lines: int = 50, stats: Counter | None = None
) -> list[dict]:
    """The cross-file completion points of one repository (``{path: text}``), in path and line order.

    A point is a line using a name that an import binds to another file of the repository and that the
    current file does not define itself. Each point has ``path``, ``language``, ``line`` (0-based),
    ``prefix`` (at most ``prefix_lines`` lines before, ending with a newline), ``groundtruth`` (the line),
    ``right_context`` (at most ``right_lines`` lines after, from the line's newline), ``names`` (the cross-file
    names used) and ``sources`` (the files they come from). Files that do not parse are skipped and
    counted in ``stats["syntax_error"]``; files without a cross-file import in ``stats["no_imports"]``.
    """
    stats = Counter() if stats is None else stats
    index = deps.RepoIndex(files)
    points: list[dict] = []
    for path in sorted(files):
        language = detect_language(path)
        if language not in LANGUAGES:
            continue
        text = files[path]
        skipped, bound, used = file_uses(path, text, files, index)
        if skipped:
            stats[skipped] += 1
            continue
        lines = text.split("\n")
        for row in sorted(used):
            if row == 0 or not lines[row].strip():
                continue
            names = sorted(used[row])
            points.append(
                dict(
                    path=path,
                    language=language,
                    line=row,
                    prefix="\n".join(lines[max(0, row - prefix_lines) : row]) + "\n",
                    groundtruth=lines[row].rstrip("\r"),
                    right_context="\n" + "\n".join(lines[row + 1 : row + 1 + right_lines]),
                    names=names,
                    sources=sorted({bound[n] for n in names}),
                )
            )
    stats["points"] += len(points)
    return points


# ----------------------------------------------------------------------------------------------------------
# Retrieval


def retrieve(
    files: Mapping[str, str], point: Mapping, top_k: int = 5, config: CrossFileConfig | None = None
) -> list[dict]:
    """CrossCodeEval's BM25 retrieval for one point of the repository ``files`` (see :class:`Retriever`)."""
    return Retriever(files, config or CrossFileConfig()).retrieve(point, top_k)


# ----------------------------------------------------------------------------------------------------------
# Metrics


def first_line(text: str) -> str:
    """The first non-empty line of a completion (stripped), as CrossCodeEval scores it."""
    return next((line.strip() for line in text.split("\n") if line.strip()), "")


def edit_similarity(a: str, b: str) -> float:
    """CrossCodeEval's edit similarity in 0–100: ``fuzz.ratio``, 100 × (1 − insertions and deletions / total length)."""
    return float(fuzz.ratio(a, b))


def identifiers(line: str, language: str | None = "Python") -> list[str]:
    """The identifiers of a line in order, the language's keywords left out."""
    keywords = _PYTHON_KEYWORDS if language in ("Python", None) else _OTHER_KEYWORDS
    return [word for word in _IDENTIFIER.findall(line) if word not in keywords]


def identifier_match(prediction: str, groundtruth: str, language: str | None = "Python") -> bool:
    """Identifier exact match: the same identifiers in the same order."""
    return identifiers(prediction, language) == identifiers(groundtruth, language)


# ----------------------------------------------------------------------------------------------------------
# Records in CrossCodeEval's schema


def record(point: Mapping, repo: str, chunks: Sequence[Mapping], task_id: str) -> dict:
    """One point as a CrossCodeEval record (``crossfile_context`` with its ``text`` and ``list``)."""
    listed = [dict(retrieved_chunk=c["text"], filename=c["path"], score=c["score"]) for c in chunks]
    return {
        "prompt": point["prefix"],
        "groundtruth": point["groundtruth"],
        "right_context": point["right_context"],
        "crossfile_context": {"text": crossfile_text(chunks, point["language"]), "list": listed},
        "metadata": {
            "task_id": task_id,
            "repository": repo,
            "file": point["path"],
            "groundtruth_start_lineno": point["line"],
            "language": point["language"],
            "names": list(point["names"]),
            "sources": list(point["sources"]),
        },
    }


def context_rows(row: Mapping) -> list[dict]:
    """A record's retrieved chunks as table rows: file, BM25 score, first line."""
    return [
        dict(file=c["filename"], score=c.get("score"), first_line=first_line(c["retrieved_chunk"]))
        for c in row["crossfile_context"].get("list", ())
    ]


def load_crosscodeeval(path: str | Path) -> list[dict]:
    """Records of a CrossCodeEval JSONL file (``.jsonl`` or ``.jsonl.gz``), checked for the official fields.

    A line that is not JSON or lacks a field is an error naming the file and line.
    """
    records = read_jsonl(path)
    for number, row in enumerate(records, 1):
        missing = [f for f in FIELDS if f not in row]
        if missing:
            raise ValueError(f"{path}: record {number}: missing CrossCodeEval fields {missing}")
        context = row["crossfile_context"]
        if isinstance(context, str):
            row["crossfile_context"] = {"text": context, "list": []}
        elif not isinstance(context, dict) or "text" not in context:
            raise ValueError(f"{path}: record {number}: crossfile_context needs a 'text' field")
    if not records:
        raise ValueError(f"{path}: no CrossCodeEval records")
    return records


# ----------------------------------------------------------------------------------------------------------
# Scoring a model


def _language(row: Mapping) -> str | None:
    language = row["metadata"].get("language") or detect_language(row["metadata"].get("file", ""))
    return {"python": "Python", "java": "Java", "typescript": "TypeScript", "csharp": "C#"}.get(language, language)


def _whole_lines(tok, text: str, budget: int, from_end: bool) -> str:
    """The most whole lines of ``text``, from its end or its start, that fit ``budget`` tokens."""
    lines = text.split("\n")
    pieces = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    # The pre-tokenizer splits at every newline, so a text's tokens are the sum of its lines' tokens.
    counts = [len(ids) for ids in encode_text(tok, pieces)]
    kept, used = [], 0
    for i in reversed(range(len(pieces))) if from_end else range(len(pieces)):
        if used + counts[i] > budget:
            break
        used += counts[i]
        kept.append(i)
    return "".join(pieces[i] for i in sorted(kept))


def fit_prompt(tok, row: Mapping, retrieval: bool, budget: int, context_budget: int | None = None) -> str:
    """The cross-file context (when ``retrieval``: its first whole lines within ``context_budget`` tokens), then
    the prompt's last whole lines within what is left of ``budget`` tokens."""
    context = ""
    if retrieval:
        limit = budget if context_budget is None else min(budget, context_budget)
        context = _whole_lines(tok, row["crossfile_context"]["text"], limit, from_end=False)
    left = budget - (len(encode_text(tok, [context])[0]) if context else 0)
    return context + _whole_lines(tok, row["prompt"], left, from_end=True)


def _budget(config: CrossFileConfig) -> int:
    return config.max_input_tokens - config.max_new_tokens - 1  # room for the output and BOS


def fit_prompts(tok, records: Sequence[Mapping], config: CrossFileConfig, retrieval: bool) -> list[str]:
    """Each record's prompt as :func:`score` gives it to the model (:func:`fit_prompt` within ``config``'s budget)."""
    return [fit_prompt(tok, row, retrieval, _budget(config), config.crossfile_tokens) for row in records]


def line_losses(model, tok, records: Sequence[Mapping], prompts: Sequence[str], batch_size: int = 8) -> list[float]:
    """The model's mean loss (nats/token) on each record's ground-truth line right after its prompt (NaN when
    the line has no token)."""
    targets = encode_text(tok, [row["groundtruth"] for row in records])
    losses = continuation_token_losses(model, [encode(tok, p) for p in prompts], targets, batch_size)
    return [float(np.mean(loss)) if loss else float("nan") for loss in losses]


def score(
    model,
    tok,
    records: Sequence[Mapping],
    config: CrossFileConfig,
    retrieval: bool,
    batch_size: int = 8,
    progress: bool = True,
) -> dict:
    """Exact match and edit similarity of the first line (%), identifier exact match (%) and the mean loss on the
    ground-truth line (nats/token) of one model, with or without the records' cross-file context; per record in
    ``items``."""
    prompts = fit_prompts(tok, records, config, retrieval)
    generation = replace(
        EvalConfig(), max_new_tokens=config.max_new_tokens, max_input_tokens=_budget(config) + 1, batch_size=batch_size
    )
    desc = "cross-file completion" + (" with retrieval" if retrieval else "")
    # No newline stop: a model may open with a blank line, and the first non-empty line is what counts.
    completions = complete(model, tok, prompts, generation, desc=desc, progress=progress)
    items: dict[str, list[float]] = {"exact_match": [], "edit_similarity": [], "identifier_em": []}
    for row, completion in zip(records, completions, strict=True):
        predicted, truth = first_line(completion), first_line(row["groundtruth"])
        items["exact_match"].append(100.0 * (predicted == truth))
        items["edit_similarity"].append(edit_similarity(predicted, truth))
        items["identifier_em"].append(100.0 * identifier_match(predicted, truth, _language(row)))
    items["loss"] = line_losses(model, tok, records, prompts, batch_size)
    means = {name: float(np.nanmean(values)) if values else float("nan") for name, values in items.items()}
    return {**means, "n": len(records), "retrieval": retrieval, "completions": completions, "items": items}


def score_checkpoint(
    path: str | Path, records: Sequence[Mapping], config: CrossFileConfig, batch_size: int = 8
) -> dict:
    """A checkpoint folder scored on ``records`` without and with their cross-file context (``"none"``,
    ``"retrieval"``)."""
    model, tok = load_hf_model(path)
    return {
        name: score(model, tok, records, config, retrieval, batch_size)
        for name, retrieval in (("none", False), ("retrieval", True))
    }


def result_rows(scores: Mapping[str, Mapping]) -> list[dict]:
    """:func:`score_checkpoint`'s numbers beside Table 7's DeepSeek-Coder-Base 6.7B Python row (results table)."""
    rows = []
    for name, label in (("none", "DeepSeek-Coder-Base 6.7B"), ("retrieval", "DeepSeek-Coder-Base 6.7B + Retrieval")):
        result, suffix = scores[name], " + retrieval" if name == "retrieval" else ""
        n = f"{result['n']} held-out points"
        for metric, column in (("exact_match", "Python EM"), ("edit_similarity", "Python ES")):
            paper = TABLE7.get(label, column)
            rows.append(
                dict(
                    metric=f"cross-file {column}{suffix}",
                    ours=result[metric],
                    paper=paper,
                    source="[P] Table 7",
                    note=n,
                )
            )
        rows.append(dict(metric=f"cross-file identifier EM{suffix}", ours=result["identifier_em"], note=n))
        rows.append(dict(metric=f"cross-file ground-truth loss (nats/token){suffix}", ours=result["loss"], note=n))
    return rows


# ----------------------------------------------------------------------------------------------------------
# Building the benchmark from held-out repositories


def build_benchmark(
    repos: Mapping[str, Mapping[str, str]],
    config: CrossFileConfig | None = None,
    count_tokens: Callable[[str], int] | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """CrossCodeEval records from repositories (``{repo: {path: text}}``) and the counts of what was skipped.

    A repository without a file of :data:`LANGUAGES`, with one file, whose files import none of its others,
    or without a point is skipped and counted; so is a file that does not parse. At most
    ``max_points_per_repo`` points per repository, then ``max_points`` in all, both spread evenly.
    """
    config = config or CrossFileConfig()
    stats: Counter = Counter()
    records: list[dict] = []
    for repo in tqdm(sorted(repos), desc="cross-file points", unit="repo", disable=not progress):
        files = repos[repo]
        parsed = sum(detect_language(p) in LANGUAGES for p in files)
        if not parsed:
            stats["repo_empty_after_filtering"] += 1
            continue
        if len(files) < 2:
            stats["repo_one_file"] += 1
            continue
        found: Counter = Counter()
        points = completion_points(files, stats=found)
        stats.update(found)
        if not points:
            if found["syntax_error"] == parsed:
                stats["repo_syntax_error"] += 1
            elif found["syntax_error"] + found["no_imports"] == parsed:
                stats["repo_no_imports"] += 1
            else:
                stats["repo_no_points"] += 1
            continue
        retriever = Retriever(files, config)
        for number, point in enumerate(subset(points, config.max_points_per_repo)):
            chunks = retriever.retrieve(point, count_tokens=count_tokens)
            records.append(record(point, repo, chunks, f"{repo}/{number}"))
        stats["repos"] += 1
    records = subset(records, config.max_points)
    return records, {**dict(sorted(stats.items())), "records": len(records)}


def heldout_files(scale: Scale | str | None = None) -> dict[str, dict[str, str]]:
    """The held-out repositories of the scale's corpus as ``{repo: {path: text}}`` (the files it kept)."""
    repos: dict[str, dict[str, str]] = {}
    for row in load_corpus(scale, "heldout"):
        pieces = split_sample(row["text"], row["paths"], row["languages"])
        repos.setdefault(row["repo"], {}).update(zip(row["paths"], pieces, strict=True))
    return repos


def ensure_benchmark(scale: Scale | str | None = None) -> list[dict]:
    """The cross-file benchmark of the scale's held-out repositories, built once into
    ``artifacts/<scale>/crossfile/`` (``crossfile.jsonl``; the skip counts in its manifest)."""
    scale = resolve(scale)
    tok = ensure_tokenizer(scale)
    config = {"data": scale.data, "crossfile": scale.crossfile, "tokenizer": fingerprint(tok.to_str())}

    def build(directory: Path) -> None:
        start = time.perf_counter()
        repos = heldout_files(scale)
        records, counts = build_benchmark(repos, scale.crossfile, lambda text: len(encode_text(tok, [text])[0]))
        with open(directory / BENCHMARK_FILE, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
        counts["heldout_repositories"] = sorted(repos)
        write_manifest(directory, config, counts=counts, timings={"build_s": time.perf_counter() - start})

    directory = ensure(scale.name, "crossfile" + corpus_label(scale), config, build)
    if not read_manifest(directory)["counts"]["records"]:
        raise ValueError(
            f"the held-out repositories of scale {scale.name!r} hold no cross-file completion point "
            f"({read_manifest(directory)['counts']}); raise data.heldout_fraction"
        )
    return load_crosscodeeval(directory / BENCHMARK_FILE)

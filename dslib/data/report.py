"""Tables and figures of the data pipeline for ``notebooks/01_data``, read from the corpus manifest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import matplotlib.pyplot as plt

from dslib import paper
from dslib.config import MIX_PRESETS, MIX_SOURCES, DataConfig
from dslib.data.mix import mix_order, source_weights
from dslib.data.quality import QUALITY_REASONS
from dslib.results import result_row

STAGE_LABELS = {
    "crawl": "crawl\n(readable text)",
    "language": "language\nidentification",
    "rule_filter": "rule filter\n§2.1",
    "dependency": "dependency\nparsing §2.2",
    "near_dedup": "repo-level\nnear-dedup §2.3",
    "quality": "quality\nscreening §2.4",
    "decontam": "decontamination\n§2.4",
}


def funnel_balances(manifest: dict) -> bool:
    """Whether input = kept + Σ dropped holds for files and for bytes."""
    funnel = manifest["counts"]["funnel"]
    return all(
        funnel["input"][unit] == funnel["kept"][unit] + sum(d[unit] for d in funnel["dropped"].values())
        for unit in ("files", "bytes")
    )


def stage_rows(manifest: dict) -> list[dict]:
    """Each stage of Figure 2 with files and bytes out, and the share of the input bytes still there."""
    stages = manifest["counts"]["funnel"]["stages"]
    total = stages[0]["bytes_in"] or 1
    return [dict(**s, retained=s["bytes_out"] / total) for s in stages]


def drop_rows(manifest: dict) -> list[dict]:
    """Every drop reason with its stage, files and bytes, largest first."""
    dropped = manifest["counts"]["funnel"]["dropped"]
    rows = [dict(reason=r, **d) for r, d in dropped.items()]
    return sorted(rows, key=lambda r: (-r["bytes"], r["reason"]))


def rule_filter_retained(manifest: dict) -> float:
    """Bytes left after the rule filter as a share of the input, the quantity §2.1 reports as 32.8%."""
    return next(r["retained"] for r in stage_rows(manifest) if r["stage"] == "rule_filter")


def language_rows(manifest: dict) -> list[dict]:
    """Our share of kept bytes per language beside Table 1's share (percent), Table 1's languages first."""
    languages = manifest["counts"]["languages"]
    total = sum(languages.values()) or 1
    names = list(paper.TABLE1.rows) + sorted(set(languages) - set(paper.TABLE1.rows), key=lambda n: -languages[n])
    return [
        dict(
            language=name,
            bytes=languages.get(name, 0),
            ours_percent=100 * languages.get(name, 0) / total,
            paper_percent=paper.TABLE1.get(name, "percent") if name in paper.TABLE1.rows else None,
        )
        for name in names
    ]


def plot_funnel(manifest: dict, ax=None):
    """Bytes remaining after each stage as a share of the input, with §2.1's 32.8% after the rule filter."""
    ax = ax or plt.subplots(figsize=(11, 4))[1]
    funnel = manifest["counts"]["funnel"]
    start = dict(stage="input", retained=1.0, files_out=funnel["input"]["files"])
    rows = [start, *stage_rows(manifest)]
    labels = ["input\n(listed files)", *(STAGE_LABELS[r["stage"]] for r in rows[1:])]
    bars = ax.bar(labels, [100 * r["retained"] for r in rows], color=["tab:gray"] + ["tab:blue"] * (len(rows) - 1))
    for bar, row in zip(bars, rows, strict=True):
        ax.annotate(f"{100 * row['retained']:.1f}%\n{row['files_out']} files", (bar.get_x() + 0.4, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    rule = [r["stage"] for r in rows].index("rule_filter")
    ax.scatter([rule], [100 * paper.RULE_FILTER_RETAINED], color="tab:red", zorder=3, label="paper: 32.8% after rules")
    ax.set_ylabel("% of input bytes remaining")
    ax.set_ylim(0, 115)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="upper right")
    return ax


def plot_languages(manifest: dict, ax=None, top: int = 20):
    """Our language shares of kept bytes beside Table 1's (log scale, so the small ones show)."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    rows = [r for r in language_rows(manifest) if r["ours_percent"] or r["paper_percent"]][:top]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["ours_percent"] for r in rows], width=0.4, label="ours (kept bytes)")
    ax.bar([i + 0.2 for i in x], [r["paper_percent"] or 0 for r in rows], width=0.4, label="paper, Table 1")
    ax.set_xticks(list(x), [r["language"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("% of corpus bytes")
    ax.legend()
    return ax


def plot_dependency_graph(graph: Mapping[str, set[str]], order: list[str], ax=None, prefix: str = ""):
    """Files left to right in topological order; an arc runs from each dependency to the file importing it.

    Arcs above the axis point forward (dependency first, as Algorithm 1 intends); arcs drawn below would
    point backward and only occur inside import cycles.
    """
    ax = ax or plt.subplots(figsize=(12, 4))[1]
    position = {f: i for i, f in enumerate(order)}
    for file, deps in graph.items():
        for dep in deps:
            a, b = position[dep], position[file]
            height = 0.1 + 0.08 * abs(b - a)
            sign = 1 if b > a else -1
            xs = [a + (b - a) * t / 20 for t in range(21)]
            ys = [sign * height * 4 * (t / 20) * (1 - t / 20) for t in range(21)]
            ax.plot(xs, ys, color="tab:blue" if sign > 0 else "tab:red", alpha=0.5, lw=1)
    ax.scatter(range(len(order)), [0] * len(order), color="black", zorder=3, s=12)
    ax.set_xticks(range(len(order)), [f.removeprefix(prefix) for f in order], rotation=70, ha="right", fontsize=7)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax


def quality_rows(manifest: dict) -> list[dict]:
    """Each quality-screening reason (§2.4) in the order it is checked, with files, bytes and a first example."""
    dropped, examples = manifest["counts"]["funnel"]["dropped"], manifest["counts"].get("quality_examples", {})
    return [
        dict(
            reason=reason,
            files=dropped.get(reason, {}).get("files", 0),
            bytes=dropped.get(reason, {}).get("bytes", 0),
            example=(examples.get(reason) or [""])[0],
        )
        for reason in QUALITY_REASONS
    ]


def mix_rows(corpus, config: DataConfig) -> list[dict]:
    """Per source of the mix (§2): documents and bytes in ``corpus``, the paper's share, the weight packing uses
    (renormalised over the sources present) and the byte share :func:`dslib.data.mix.mix_order` realises."""
    sources, sizes = corpus["source"], corpus["size"]
    weights = config.mix_weights
    target = source_weights(weights, set(sources)) if weights else {}
    order = mix_order(sources, sizes, weights, config.seed)
    sampled = Counter()
    for i in order.tolist():
        sampled[sources[i]] += sizes[i]
    total, sampled_total = sum(sizes) or 1, sum(sampled.values()) or 1
    rows = []
    for source in MIX_SOURCES:
        here = [s for s, src in zip(sizes, sources, strict=True) if src == source]
        rows.append(
            dict(
                source=source,
                documents=len(here),
                bytes=sum(here),
                corpus_share=sum(here) / total,
                paper_share=MIX_PRESETS["paper"][source],
                weight=target.get(source, 0.0),
                sampled_share=sampled[source] / sampled_total,
            )
        )
    return rows


def result_rows(manifest: Mapping, scale: str) -> list[dict]:
    """The data stage's numbers beside the paper's (rule-filter retention §2.1, Python share Table 1, the
    funnel of Figure 2, near-dedup §2.3, decontamination §2.4), from the corpus manifest."""
    funnel = manifest["counts"]["funnel"]
    python_share = next(r["ours_percent"] for r in language_rows(manifest) if r["language"] == "Python")
    flagged = manifest["counts"]["decontamination"]["files"]
    return [
        result_row(
            "bytes retained after rule filtering",
            round(rule_filter_retained(manifest), 4),
            paper.RULE_FILTER_RETAINED,
            "[P] §2.1",
            "installed packages, not raw GitHub",
        ),
        result_row(
            "Python share of kept bytes (%)",
            round(python_share, 2),
            paper.TABLE1.get("Python", "percent"),
            "[P] Table 1",
            "a Python environment",
        ),
        result_row(
            "bytes kept after every stage",
            round(funnel["kept"]["bytes"] / funnel["input"]["bytes"], 4),
            None,
            "[P] Figure 2",
            f"{funnel['kept']['files']} of {funnel['input']['files']} files, scale {scale}",
        ),
        result_row(
            "repository clusters removed as near-duplicates",
            len(manifest["counts"]["near_duplicate_clusters"]),
            None,
            "[P] §2.3",
            "5-gram MinHash, 256 permutations, Jaccard 0.7",
        ),
        result_row(
            "files flagged by decontamination (10-gram / exact)",
            f"{flagged.get('decontam_10gram', 0)} / {flagged.get('decontam_exact', 0)}",
            None,
            "[P] §2.4",
            "every benchmark the evaluation suite ships",
        ),
    ]

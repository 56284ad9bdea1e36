"""Cross-file completion: points checked by hand, BM25 against rank_bm25, edit similarity against brute force."""

import gzip
import json
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from dslib.config import CrossFileConfig, ModelConfig
from dslib.eval import crossfile
from dslib.eval.crossfile import (
    build_benchmark,
    completion_points,
    edit_similarity,
    identifier_match,
    load_crosscodeeval,
    record,
    retrieve,
    score,
)
from dslib.eval.generation import encode
from dslib.eval.retrieval import BM25, Retriever, crossfile_text, tokens
from dslib.model import Transformer
from dslib.tokenizer import BOS, EOS, encode_text, train_tokenizer

UTIL = """\
def greet(name):
    return f"hello {name}"


LIMIT = 3
_private = 0
"""
MAIN = """\
from .util import greet as hello, LIMIT
from . import shapes
import os


def main(count=LIMIT):
    x = hello("a")
    os.path.join(x)
    for i in range(LIMIT):
        print(hello(str(i)))
    obj.hello(1)
    f(hello=1)
    return shapes.area(2)
"""
SHAPES = """\
from pkg.util import *


def area(side):
    return side * side * LIMIT


def greet(name):
    return name
"""
SHADOW = """\
from pkg.util import greet, LIMIT

LIMIT = 4


def shout():
    return greet("x").upper() + str(LIMIT)
"""
REPO = {
    "pkg/__init__.py": "",
    "pkg/util.py": UTIL,
    "pkg/main.py": MAIN,
    "pkg/shapes.py": SHAPES,
    "pkg/shadow.py": SHADOW,
    "pkg/broken.py": "from pkg.util import greet\n\ndef broken(:\n    greet()\n",
    "README.md": "# pkg\n\nUses greet.\n",
}
# (path, line, names, sources), worked out by hand: a line reading a name that an import binds to a file of
# the repository and that the file does not define. main.py: `obj.hello` is an attribute and `hello=1` a
# keyword, `os` is not in the repository, import lines are not points. shapes.py: the wildcard brings `greet`
# and `LIMIT` (not `_private`); `greet` is defined again there. shadow.py: `LIMIT` is assigned there.
EXPECTED = [
    ("pkg/main.py", 5, ["LIMIT"], ["pkg/util.py"]),
    ("pkg/main.py", 6, ["hello"], ["pkg/util.py"]),
    ("pkg/main.py", 8, ["LIMIT"], ["pkg/util.py"]),
    ("pkg/main.py", 9, ["hello"], ["pkg/util.py"]),
    ("pkg/main.py", 12, ["shapes"], ["pkg/shapes.py"]),
    ("pkg/shadow.py", 6, ["greet"], ["pkg/util.py"]),
    ("pkg/shapes.py", 4, ["LIMIT"], ["pkg/util.py"]),
]


def test_completion_points_match_the_hand_checked_repository():
    stats = Counter()
    points = completion_points(REPO, stats=stats)
    assert [(p["path"], p["line"], p["names"], p["sources"]) for p in points] == EXPECTED
    assert stats == {"points": 7, "syntax_error": 1, "no_imports": 2}  # broken.py; __init__.py and util.py
    for point in points:
        text = REPO[point["path"]]
        assert point["prefix"] + point["groundtruth"] + point["right_context"] == text
        assert point["groundtruth"] == text.split("\n")[point["line"]] and point["prefix"].endswith("\n")


def test_prefix_and_right_context_are_truncated():
    point = completion_points(REPO, prefix_lines=2, right_lines=1)[3]
    assert point["prefix"] == "\n".join(MAIN.split("\n")[7:9]) + "\n"
    assert point["right_context"] == "\n" + MAIN.split("\n")[10]


# One small repository per language the dependency parser resolves, with the points worked out by hand: the
# names come from the top-level declarations of the imported file; imports, the file's own declarations
# (geo.c defines area again) and members declared inside a class (Java's go) are not points.
POLYGLOT = {
    "src/util.ts": (
        "export function add(a: number, b: number): number {\n  return a + b;\n}\n"
        "export const LIMIT = 3;\nexport interface Shape { area(): number }\n"
    ),
    "src/main.ts": (
        'import { add,\n  LIMIT } from "./util";\nimport * as fs from "fs";\n\nfunction run(): number {\n'
        "  const x = add(1, 2);\n  let s: Shape;\n  return x * LIMIT;\n}\n"
    ),
    "com/acme/Util.java": "package com.acme;\n\npublic class Util {\n  public static int go() { return 1; }\n}\n",
    "com/acme/app/Main.java": (
        "package com.acme.app;\n\nimport com.acme.Util;\n\npublic class Main {\n  int run() {\n"
        "    return Util.go();\n  }\n}\n"
    ),
    "lib/geo.h": (
        "#ifndef GEO_H\n#define GEO_H\nint area(int w, int h);\ntypedef struct point { int x; } point_t;\n"
        "#define MAXW 10\n#endif\n"
    ),
    "lib/geo.c": '#include "geo.h"\nint area(int w, int h) { return w * h; }\n',
    "lib/app.c": (
        '#include <stdio.h>\n#include "geo.h"\n\nint main(void) {\n  point_t p;\n'
        '  printf("%d", area(MAXW, 2));\n  return 0;\n}\n'
    ),
    "go/shapes/shapes.go": "package shapes\n\nfunc Square(x int) int { return x * x }\n\ntype Box struct{ W int }\n",
    "go/cmd/main.go": (
        'package main\n\nimport (\n\t"example.com/go/shapes"\n)\n\nfunc main() {\n\tb := shapes.Box{W: 2}\n'
        "\t_ = shapes.Square(b.W)\n}\n"
    ),
    "crate/src/lib.rs": "mod geom;\nuse crate::geom::Point;\n\npub fn origin() -> Point {\n    Point { x: 0 }\n}\n",
    "crate/src/geom.rs": "pub struct Point { pub x: i32 }\npub fn dist(p: &Point) -> i32 { p.x }\n",
}
POLYGLOT_EXPECTED = [
    ("com/acme/app/Main.java", 6, ["Util"], "Java"),
    ("crate/src/lib.rs", 3, ["Point"], "Rust"),
    ("crate/src/lib.rs", 4, ["Point"], "Rust"),
    ("go/cmd/main.go", 7, ["Box"], "Go"),
    ("go/cmd/main.go", 8, ["Square"], "Go"),
    ("lib/app.c", 4, ["point_t"], "C"),
    ("lib/app.c", 5, ["MAXW", "area"], "C"),
    ("src/main.ts", 5, ["add"], "TypeScript"),
    ("src/main.ts", 6, ["Shape"], "TypeScript"),
    ("src/main.ts", 7, ["LIMIT"], "TypeScript"),
]


def test_completion_points_in_the_other_languages_the_parser_resolves():
    points = completion_points(POLYGLOT)
    assert [(p["path"], p["line"], p["names"], p["language"]) for p in points] == POLYGLOT_EXPECTED
    for point in points:
        assert point["prefix"] + point["groundtruth"] + point["right_context"] == POLYGLOT[point["path"]]
    chunks = retrieve(POLYGLOT, points[-1])
    assert chunks[0]["path"] == "src/util.ts"
    assert crossfile_text(chunks[:1], "TypeScript").startswith("// src/util.ts\n// export function add(")


def _chunks() -> list[list[str]]:
    """Real code: 10-line chunks of the json and email packages."""
    retriever = Retriever({str(p): p.read_text() for p in sorted(Path(json.__file__).parent.glob("*.py"))})
    return [tokens(retriever.text(path, start)) for path, start in retriever.chunks]


def test_bm25_scores_and_top5_equal_rank_bm25():
    documents = _chunks()
    ours, reference = BM25(documents), BM25Okapi(documents)
    rng = random.Random(0)
    for _ in range(50):
        query = rng.choice(documents)[:30] + [rng.choice(rng.choice(documents) or ["x"]), "not_a_term"]
        expected = reference.get_scores(query)
        np.testing.assert_allclose(ours.scores(query), expected, rtol=1e-9, atol=1e-12)
        top = ours.top(query, 5)
        assert top == sorted(range(len(documents)), key=lambda i: (-expected[i], i))[:5]
        # rank_bm25's own ranking agrees wherever the fifth and sixth scores are not tied.
        ranked = np.sort(expected)[::-1]
        if ranked[4] - ranked[5] > 1e-9:
            assert [documents[i] for i in top] == reference.get_top_n(query, documents, n=5)


def test_retrieve_never_returns_the_points_own_file_and_can_take_the_next_chunk():
    files = {**REPO, "pkg/util.py": UTIL + "\n".join(f"VALUE_{i} = {i}" for i in range(30)) + "\n"}
    for point in completion_points(files):
        chunks = retrieve(files, point)
        assert 0 < len(chunks) <= 5 and all(c["path"] != point["path"] for c in chunks)
        assert [c["score"] for c in chunks] == sorted((c["score"] for c in chunks), reverse=True)
        for chunk in chunks:
            assert chunk["text"] == "\n".join(files[chunk["path"]].split("\n")[chunk["line"] : chunk["line"] + 10])
    point = completion_points(files)[0]
    after = Retriever(files, CrossFileConfig(next_chunk=True)).retrieve(point)
    first = retrieve(files, point)
    util = next(c for c in first if c["path"] == "pkg/util.py" and c["line"] == 0)
    assert any(c["path"] == "pkg/util.py" and c["line"] == util["line"] + 10 for c in after)


def test_cross_file_budget_keeps_the_best_chunks_that_fit():
    point = completion_points(REPO)[0]
    retriever = Retriever(REPO, CrossFileConfig(crossfile_tokens=60))
    words = lambda text: len(text.split())  # noqa: E731
    kept = retriever.retrieve(point, count_tokens=words)
    assert sum(words(crossfile_text([c], "Python")) for c in kept) <= 60
    assert kept and len(kept) < len(retriever.retrieve(point))


def _indel(a: str, b: str) -> int:
    """Insertions and deletions that turn ``a`` into ``b``, by brute-force dynamic programming."""
    table = [[i + j if i == 0 or j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            same = table[i - 1][j - 1] if a[i - 1] == b[j - 1] else len(a) + len(b)
            table[i][j] = min(same, table[i - 1][j] + 1, table[i][j - 1] + 1)
    return table[len(a)][len(b)]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab(x)_ .", max_size=12), st.text(alphabet="ab(x)_ .", max_size=12))
def test_edit_similarity_equals_brute_force(a, b):
    expected = 100.0 if not a and not b else 100.0 * (1 - _indel(a, b) / (len(a) + len(b)))
    assert edit_similarity(a, b) == pytest.approx(expected)
    assert 0 <= edit_similarity(a, b) <= 100


def test_identifier_match_ignores_keywords_spacing_and_literals():
    assert identifier_match("return  greet( name )", "return greet(name)")
    assert identifier_match("x = f(1)", "x = f(2)")
    assert not identifier_match("x = f(y)", "x = g(y)")
    assert not identifier_match("greet(a, b)", "greet(b, a)")
    assert identifier_match("return new Box(w);", "return  new Box( w )", "Java")
    assert not identifier_match("return new Box(w);", "return new Box(h);", "Java")
    assert identifier_match("const x = add(1)", "let x = add(2)", "TypeScript")


def _official(tmp_path: Path, rows: list[dict], gz: bool = False) -> Path:
    path = tmp_path / ("line_completion.jsonl" + (".gz" if gz else ""))
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    return path


OFFICIAL = {
    "prompt": "from .util import greet\n\ndef main():\n    ",
    "groundtruth": "greet('world')",
    "right_context": "\n\nmain()\n",
    "crossfile_context": {
        "text": "# the below code fragment can be found in:\n# util.py\n# def greet(name):\n",
        "list": [{"retrieved_chunk": "def greet(name):\n", "filename": "util.py", "score": 1.5}],
    },
    "metadata": {
        "task_id": "project_cc_python/0",
        "repository": "owner-repo-0123",
        "file": "main.py",
        "context_start_lineno": 0,
        "groundtruth_start_lineno": 3,
        "right_context_start_lineno": 4,
    },
}


@pytest.mark.parametrize("gz", [False, True])
def test_load_crosscodeeval_reads_the_official_schema(tmp_path, gz):
    rows = load_crosscodeeval(_official(tmp_path, [OFFICIAL, {**OFFICIAL, "crossfile_context": "# plain\n"}], gz))
    assert rows[0] == OFFICIAL and rows[1]["crossfile_context"] == {"text": "# plain\n", "list": []}


def test_load_crosscodeeval_names_the_bad_line(tmp_path):
    missing = {k: v for k, v in OFFICIAL.items() if k != "groundtruth"}
    with pytest.raises(ValueError, match=r"jsonl: record 2: missing CrossCodeEval fields \['groundtruth'\]"):
        load_crosscodeeval(_official(tmp_path, [OFFICIAL, missing]))
    (tmp_path / "bad.jsonl").write_text(json.dumps(OFFICIAL) + "\n{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:2: not a JSON record"):
        load_crosscodeeval(tmp_path / "bad.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no CrossCodeEval records"):
        load_crosscodeeval(tmp_path / "empty.jsonl")


def test_built_records_round_trip_through_the_loader(tmp_path):
    records, counts = build_benchmark({"good": REPO}, progress=False)
    assert counts == {"points": 7, "syntax_error": 1, "no_imports": 2, "records": 7, "repos": 1}
    path = tmp_path / "ours.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    loaded = load_crosscodeeval(path)
    assert loaded == records
    first = loaded[0]
    assert first["crossfile_context"]["text"].startswith("# pkg/")
    assert all(c["filename"] != first["metadata"]["file"] for c in first["crossfile_context"]["list"])


def test_bad_repositories_are_skipped_and_counted():
    repos = {
        "good": REPO,
        "one_file": {"a.py": "from b import c\nc()\n"},
        "no_imports": {"a.py": "import os\nos.getcwd()\n", "b.py": "x = 1\n"},
        "unparsable": {"a.py": "from b import c\ndef (:\n", "b.py": "def c(:\n"},
        "no_code": {"data.json": '{"x": 1}\n', "README.md": "# hi\n"},
        "unused": {"a.py": "from b import c\n", "b.py": "def c():\n    return 1\n"},
    }
    records, counts = build_benchmark(repos, CrossFileConfig(max_points_per_repo=3), progress=False)
    assert {r["metadata"]["repository"] for r in records} == {"good"} and len(records) == 3
    assert counts["repo_one_file"] == counts["repo_no_imports"] == counts["repo_syntax_error"] == 1
    assert counts["repo_empty_after_filtering"] == counts["repo_no_points"] == counts["repos"] == 1


@pytest.fixture(scope="module")
def tiny():
    texts = [UTIL, MAIN, SHAPES, SHADOW] * 3
    tok = train_tokenizer(texts, vocab_size=300, show_progress=False)
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=1024,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
    )
    return Transformer(config).eval(), tok


def test_score_loss_equals_one_unbatched_forward_per_record(tiny):
    model, tok = tiny
    records, _ = build_benchmark({"good": REPO}, progress=False)
    config = CrossFileConfig(max_input_tokens=256, max_new_tokens=8, crossfile_tokens=64)
    result = score(model, tok, records, config, retrieval=True, batch_size=3, progress=False)
    assert result["n"] == len(records) and len(result["items"]["loss"]) == len(records)
    for row, loss in zip(records, result["items"]["loss"], strict=True):
        prompt = crossfile.fit_prompt(tok, row, True, 256 - 8 - 1, 64)
        assert prompt.split("\n")[0] == row["crossfile_context"]["text"].split("\n")[0]  # the best chunk's path
        ids, target = encode(tok, prompt), encode_text(tok, [row["groundtruth"]])[0]
        with torch.no_grad():
            logits = model(torch.tensor([ids + target]))[0]
        expected = F.cross_entropy(logits[len(ids) - 1 : -1], torch.tensor(target)).item()
        assert loss == pytest.approx(expected, rel=1e-4)
    plain = score(model, tok, records, config, retrieval=False, batch_size=3, progress=False)
    assert plain["items"]["loss"] != result["items"]["loss"]


def test_score_counts_a_right_first_line(tiny, monkeypatch):
    model, tok = tiny
    records, _ = build_benchmark({"good": REPO}, progress=False)
    right = [r["groundtruth"].strip() + "\nnext_line()" for r in records]
    monkeypatch.setattr(crossfile, "complete", lambda *args, **kwargs: right)
    result = score(model, tok, records, CrossFileConfig(), retrieval=False, progress=False)
    assert result["exact_match"] == result["edit_similarity"] == result["identifier_em"] == 100.0
    wrong = ["zzz" for _ in records]
    monkeypatch.setattr(crossfile, "complete", lambda *args, **kwargs: wrong)
    result = score(model, tok, records, CrossFileConfig(), retrieval=False, progress=False)
    assert result["exact_match"] == result["identifier_em"] == 0.0 and result["edit_similarity"] < 50


def test_prompt_keeps_the_context_and_drops_the_prefix_from_the_left(tiny):
    _, tok = tiny
    row = record(completion_points(REPO)[3], "good", retrieve(REPO, completion_points(REPO)[3]), "good/3")
    full = crossfile.fit_prompt(tok, row, True, 10_000)
    assert full == row["crossfile_context"]["text"] + row["prompt"]
    short = crossfile.fit_prompt(tok, row, True, len(encode_text(tok, [row["crossfile_context"]["text"]])[0]) + 8)
    assert short.startswith(row["crossfile_context"]["text"]) and row["prompt"].endswith(
        short[len(row["crossfile_context"]["text"]) :]
    )
    assert len(short) < len(full)


@pytest.mark.slow
def test_benchmark_from_a_corpus_uses_only_its_heldout_repositories(tmp_path, monkeypatch):
    from dslib.artifacts import read_manifest
    from dslib.config import get_scale
    from dslib.data.pipeline import corpus_dir, load_corpus

    monkeypatch.setenv("DSLIB_HOME", str(tmp_path))
    stdlib = Path(json.__file__).parents[1]
    for name in ("json", "email", "http", "urllib", "xmlrpc", "wsgiref", "concurrent", "importlib"):
        shutil.copytree(stdlib / name, tmp_path / "repos" / name / name, ignore=shutil.ignore_patterns("__pycache__"))
    overrides = {"data.source": str(tmp_path / "repos"), "data.num_proc": 1, "data.heldout_fraction": 0.25}
    scale = get_scale("smoke", {**overrides, "tokenizer.vocab_size": 600})
    records = crossfile.ensure_benchmark(scale)
    heldout = read_manifest(corpus_dir(scale))["counts"]["heldout"]["repositories"]
    assert len(heldout) == 2 and records
    assert {r["metadata"]["repository"] for r in records} <= set(heldout)
    assert not set(heldout) & set(load_corpus(scale)["repo"])
    (folder,) = (tmp_path / "artifacts" / "smoke").glob("crossfile*")  # with its corpus's label
    built = read_manifest(folder)["counts"]
    assert built["records"] == len(records) <= min(scale.crossfile.max_points, built["points"])
    for row in records:
        context = row["crossfile_context"]
        assert all(c["filename"] != row["metadata"]["file"] for c in context["list"])
        assert (
            len(encode_text(crossfile.ensure_tokenizer(scale), [context["text"]])[0])
            <= scale.crossfile.crossfile_tokens
        )


def test_an_official_context_longer_than_the_budget_keeps_its_first_lines(tiny):
    _, tok = tiny
    context = "".join(f"# chunk line {i} with greet and LIMIT\n" for i in range(400))
    row = {**OFFICIAL, "crossfile_context": {"text": context, "list": []}}
    prompt = crossfile.fit_prompt(tok, row, True, 300, 100)
    kept = prompt[: len(prompt) - len(row["prompt"])]
    assert prompt.endswith(row["prompt"]) and context.startswith(kept) and kept.endswith("\n")
    line = len(encode_text(tok, [context.split("\n")[0] + "\n"])[0])  # every line has as many tokens
    assert len(encode_text(tok, [kept])[0]) <= 100 < len(encode_text(tok, [kept])[0]) + line
    assert len(encode_text(tok, [prompt])[0]) <= 300

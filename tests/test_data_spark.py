"""The Spark engine against the local one: the same manifest counts, byte-identical shards, the same clusters.

One SparkSession (local[2]) serves every test; without Java or pyspark these tests skip with the reason.
"""

import random
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dslib.artifacts import read_manifest
from dslib.config import DataConfig, get_scale
from dslib.data import __main__ as cli
from dslib.data import pipeline, spark

REASON = spark.unavailable()


@pytest.fixture(scope="session")
def session():
    if REASON:
        pytest.skip(REASON)
    yield spark.session("local[2]")


def _both(config: DataConfig, tmp_path: Path, session) -> tuple[dict, dict]:
    """Build with each engine; assert the shard files are byte-identical; return both manifests' counts."""
    local, distributed = tmp_path / "local", tmp_path / "spark"
    pipeline.build_corpus(config, local)
    spark.build_corpus(replace(config, engine="spark"), distributed, spark=session)
    shards = sorted(p.name for p in local.glob("*.parquet"))
    assert shards and shards == sorted(p.name for p in distributed.glob("*.parquet"))
    for name in shards:
        assert (local / name).read_bytes() == (distributed / name).read_bytes(), name
    return read_manifest(local)["counts"], read_manifest(distributed)["counts"]


def test_default_corpus_at_smoke_is_identical_on_both_engines(tmp_path, session):
    local, distributed = _both(get_scale("smoke").data, tmp_path, session)
    assert local == distributed
    assert local["funnel"]["kept"]["files"] > 0 and local["funnel"]["dropped"]


def _rows(repo: str, files: dict[str, str | bytes | None], lang: str = "Python") -> list[dict]:
    return [dict(max_stars_repo_name=repo, max_stars_repo_path=p, content=c, lang=lang) for p, c in files.items()]


def _module(seed: int) -> str:
    """A Python module of a few hundred distinct words, so near-duplicates are decided by MinHash alone."""
    rng = random.Random(seed)
    lines = [f"def f_{i}(x):\n    return x * {rng.randint(0, 10**6)} + {rng.randint(0, 10**6)}\n" for i in range(80)]
    return "\n\n".join(lines)


@pytest.fixture(scope="module")
def stack_shards(tmp_path_factory) -> Path:
    """The Stack's schema in three shards: good repositories with near-duplicates across shards, and every kind
    of bad input (a shard without ``content``, null content, non-UTF-8 bytes, a huge file, a huge repository)."""
    root = tmp_path_factory.mktemp("stack")
    a, b = _module(1), _module(2)
    good = (
        _rows("org/alpha", {"main.py": a, "README.md": "# Alpha\n\nA small package that computes things.\n"})
        + _rows("org/beta", {"main.py": b})
        + _rows("org/epsilon", {"main.py": a.replace("return x", "return  x", 1)})  # near-duplicate of alpha
        + _rows("org/zeta", {"main.py": b + "\n# one more line\n"})  # near-duplicate of beta
        + _rows("org/gamma", {"util.py": "def add(a, b):\n    return a + b\n", "broken.py": "def broken(:\n"})
        + _rows("org/gamma", {"util.py": "def add(a, b):\n    return b + a\n"})  # the same path listed twice
        + [dict(max_stars_repo_name="org/delta", max_stars_repo_path="none.py", content=None, lang="Python")]
        + _rows("org/huge-file", {"big.py": "x = 1\n" * (50_000_000 // 6)})
    )
    pq.write_table(pa.Table.from_pylist(good), root / "part-0.parquet")
    binary = pa.schema([(n, pa.string()) for n in ("max_stars_repo_name", "max_stars_repo_path", "lang")])
    binary = binary.append(pa.field("content", pa.binary()))
    raw = _rows("org/latin", {"latin1.py": "name = 'Jos\xe9'\n".encode("latin-1"), "ok.py": b"print('ok')\n"})
    raw += _rows("org/many", {f"f{i:06d}.py": f"v = {i}\n".encode() for i in range(100_000)})
    pq.write_table(pa.Table.from_pylist(raw, schema=binary), root / "part-1.parquet")
    pq.write_table(pa.table({"max_stars_repo_name": ["org/lost"], "path": ["x.py"]}), root / "part-2.parquet")
    return root


def test_stack_parquet_with_bad_input_is_identical_and_counted(stack_shards, tmp_path, session):
    config = DataConfig(source=f"parquet:{stack_shards}", num_shards=4, heldout_fraction=0.0)
    local, distributed = _both(config, tmp_path, session)
    assert local == distributed
    dropped = {reason: counts["files"] for reason, counts in local["funnel"]["dropped"].items()}
    assert dropped["missing_column"] == 1
    assert local["funnel"]["dropped"]["missing_column"]["bytes"] == (stack_shards / "part-2.parquet").stat().st_size
    assert dropped["null_content"] == 1 and dropped["not_utf8"] == 1 and dropped["duplicate_path"] == 1
    assert local["funnel"]["dropped"]["too_large"]["bytes"] >= 50_000_000 - 6
    # Skew: the 100,000-file repository is cut at max_repo_files, the rest counted, not lost.
    assert dropped["repo_file_limit"] == 100_000 - config.max_repo_files
    assert local["funnel"]["input"]["files"] == local["funnel"]["kept"]["files"] + sum(dropped.values())
    # Names sorted (alpha, beta, ..., zeta is the 9th) and dealt into 4 shards: zeta (shard 0) is met before beta
    # (shard 1), so zeta is the representative kept, on both engines.
    assert local["near_duplicate_clusters"] == [["org/alpha", "org/epsilon"], ["org/zeta", "org/beta"]]


def test_without_java_the_spark_engine_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["--engine", "spark", "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Java" in error
    assert not (tmp_path / "out").exists()


def test_a_failed_build_leaves_no_output_and_no_partial_folder(tmp_path, monkeypatch):
    def fail(config, directory):
        Path(directory).mkdir(parents=True)
        (Path(directory) / "train-00000-of-00001.parquet").write_bytes(b"half")
        raise RuntimeError("worker lost")

    monkeypatch.setattr(pipeline, "build_corpus", fail)
    with pytest.raises(RuntimeError, match="worker lost"):
        pipeline.build_corpus_into(DataConfig(), tmp_path / "corpus")
    assert list(tmp_path.iterdir()) == []


def test_spark_is_optional(monkeypatch):
    monkeypatch.setattr(spark.importlib.util, "find_spec", lambda name: None)
    assert "pip install" in spark.unavailable()


def test_connected_components_match_union_find(session):
    edges = [(3, 1), (1, 4), (4, 0), (8, 7), (5, 5)]  # a path 3-1-4-0, a pair, a self-loop
    labels = dict(spark.connected_components(session.sparkContext.parallelize(edges, 2), 2).collect())
    parent = {}

    def root(node):
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for a, b in edges:
        parent[max(root(a), root(b))] = min(root(a), root(b))
    assert labels == {node: root(node) for node in parent}


def _documented(seed: int) -> str:
    """A commented Python module of distinct functions, one that quality screening keeps."""
    rng = random.Random(seed)
    words = ["scale", "shift", "price", "total", "count", "weight", "offset", "ratio", "limit", "value"]
    functions = []
    for i in range(40):
        name, why, what = f"{rng.choice(words)}_{rng.choice(words)}_{i}", rng.choice(words), rng.choice(words)
        functions.append(
            f"def {name}(amount, factor):\n    # {why} the amount by the {what} factor\n"
            f"    result = amount * factor + {rng.randint(0, 10**6)}\n    return result - {rng.randint(0, 10**6)}\n"
        )
    return "\n\n".join(functions)


def test_heldout_copies_docs_and_file_documents_are_identical_on_both_engines(tmp_path, session):
    """issue 15 and 19 on Spark: a repository forced into the held-out split, a copy of its file elsewhere dropped
    as ``heldout_copy``, a documentation folder as the mix's English source, one document per file."""
    shards, docs = tmp_path / "stack", tmp_path / "docs" / "guide"
    shards.mkdir()
    docs.mkdir(parents=True)
    (docs / "index.md").write_text("# Guide\n\nHow to install the package, and how to call it from your code.\n")
    a = _documented(1)
    vendored = a.replace("    ", "  ")  # re-indented: still a copy (repo_level.content_digest)
    rows = (
        _rows("org/alpha", {"main.py": a, "README.md": "# Alpha\n\nA package that computes many things.\n"})
        + _rows("org/copier", {"vendored.py": vendored, "own.py": _documented(3), "extra.py": _documented(4)})
        + _rows("org/beta", {"main.py": _documented(2)})
    )
    pq.write_table(pa.Table.from_pylist(rows), shards / "part-0.parquet")
    config = DataConfig(
        source=f"parquet:{shards}",
        num_shards=2,
        heldout_fraction=0.0,
        heldout_repos=("org/alpha",),  # forced, whatever the draw (none here)
        docs_folders=(str(docs.parent),),
        repo_level="file",
    )
    local, distributed = _both(config, tmp_path / "out", session)
    assert local == distributed
    assert local["heldout"]["repositories"] == ["org/alpha"] and local["heldout_forced"] == ["org/alpha"]
    assert local["decontamination"]["heldout_copies"] == ["org/copier/vendored.py"]
    assert local["funnel"]["dropped"]["heldout_copy"]["files"] == 1
    assert local["mix_bytes"]["english"] > 0 and local["repositories"]["docs_selected"] == 1
    assert local["splits"]["train"]["documents"] > local["splits"]["train"]["repos"]  # one document per file

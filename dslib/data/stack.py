"""The Stack's Parquet schema as a crawl source (DeepSeek-Coder §2, Figure 2's first step), for both engines.

Each row is one file: ``content`` (a string, or binary where a file need not be UTF-8), its path
(``max_stars_repo_path`` or ``path``), its repository (``max_stars_repo_name`` or ``repo_name``) and
optionally ``lang``; the other columns of The Stack are ignored. Bad input is counted, never fatal:

- a shard without one of those columns is one file, named after the shard, of the shard's size
  (``missing_column``), in a repository of the same name; its rows are not read;
- a row whose ``content`` is null is a file of 0 bytes (``null_content``); binary content that is not
  UTF-8 becomes ``not_utf8`` and an oversized one ``too_large`` when :func:`dslib.data.sources.read_text` reads it.

The local engine reads local shards with pyarrow (:func:`parquet_repositories`); the Spark engine reads
any URL Spark reads and turns rows into files with the same :func:`row_file` and :func:`file_order`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from dslib.data.sources import Repository, SourceFile, _unique_paths

logger = logging.getLogger(__name__)

PARQUET_PREFIX = "parquet:"  # DataConfig.source = "parquet:<folder, file or URL of Parquet shards>"
REPO_COLUMNS = ("max_stars_repo_name", "repo_name")
PATH_COLUMNS = ("max_stars_repo_path", "path")
NO_REPOSITORY = "(no repository)"  # where a row with a null repository name goes


def columns(names: list[str]) -> tuple[dict[str, str | None], str | None]:
    """The columns to read from a shard with columns ``names`` (``repo``, ``path``, ``content``, ``lang``) and
    the description of a required column it lacks (``None`` when it has them all)."""
    repo = next((c for c in REPO_COLUMNS if c in names), None)
    path = next((c for c in PATH_COLUMNS if c in names), None)
    chosen = dict(repo=repo, path=path, content="content" if "content" in names else None)
    chosen["lang"] = "lang" if "lang" in names else None
    missing = [
        " or ".join(options)
        for key, options in [("repo", REPO_COLUMNS), ("path", PATH_COLUMNS), ("content", ("content",))]
        if chosen[key] is None
    ]
    return chosen, ", ".join(missing) or None


def missing_column_file(shard: str, size: int, missing: str) -> tuple[str, SourceFile]:
    """The repository and the one file that stand for a shard lacking a column (counted ``missing_column``)."""
    name = shard.rstrip("/").rsplit("/", 1)[-1]
    logger.warning("parquet shard %s lacks column %s; counted as missing_column", shard, missing)
    return name, SourceFile(path=name, size=size, problem="missing_column")


def row_file(
    repo: str | None, path: str | None, content: str | bytes | None, lang: str | None, max_file_bytes: int
) -> tuple[str, SourceFile]:
    """The repository and :class:`SourceFile` of one row; the content of a file over ``max_file_bytes`` is not
    kept (the pipeline never reads it: it is counted ``too_large`` by its size)."""
    path = (path or "").lstrip("/")
    if content is None:
        return repo or NO_REPOSITORY, SourceFile(path=path, size=0, problem="null_content", language=lang)
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else bytes(content)
    kept = data if len(data) <= max_file_bytes else None
    return repo or NO_REPOSITORY, SourceFile(
        path=path, size=len(data), content=kept, language=lang, problem=None if kept is not None else "too_large"
    )


def file_order(file: SourceFile) -> tuple:
    """Files of a repository in this order: by path, then (a path listed twice) by size, problem and content, so
    which copy is kept never depends on how the rows were sharded."""
    return file.path, file.size, file.problem or "", file.content or b""


def repository(name: str, files: list[SourceFile]) -> Repository:
    """A repository of ``files`` in :func:`file_order`, a repeated path counted ``duplicate_path``."""
    return Repository(name, _unique_paths(sorted(files, key=file_order)), origin="parquet")


def parquet_shards(location: str | Path) -> list[Path]:
    """The ``.parquet`` files at ``location`` (one file, or every one below a folder), sorted."""
    location = Path(location)
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise FileNotFoundError(f"parquet source {location} is neither a Parquet file nor a folder")
    return sorted(location.rglob("*.parquet"))


def parquet_repositories(location: str | Path, max_file_bytes: int) -> list[Repository]:
    """The repositories in the Parquet shards at ``location`` (the local engine's reader), sorted by name."""
    grouped: dict[str, list[SourceFile]] = {}
    for shard in tqdm(parquet_shards(location), desc="data: read parquet", unit="shard"):
        chosen, missing = columns(pq.read_schema(shard).names)
        if missing:
            name, file = missing_column_file(str(shard), shard.stat().st_size, missing)
            grouped.setdefault(name, []).append(file)
            continue
        table = pq.read_table(shard, columns=[c for c in chosen.values() if c])
        for batch in table.to_batches():
            values = {key: batch.column(c).to_pylist() if c else [None] * batch.num_rows for key, c in chosen.items()}
            for repo, path, content, lang in zip(*values.values(), strict=True):
                name, file = row_file(repo, path, content, lang, max_file_bytes)
                grouped.setdefault(name, []).append(file)
    return [repository(name, files) for name, files in sorted(grouped.items())]

"""Where the repositories come from: the crawl step of DeepSeek-Coder §2 (Figure 2).

The paper crawls public GitHub repositories created before February 2023. Three sources stand in for it:

- :func:`python_environment` (the default): every installed distribution of the running Python and the
  standard library, each one repository — real code that is already on any machine.
- :func:`local_repos`: each folder under a directory, ``.git/`` skipped and ``.gitignore`` respected.
- :func:`hub_dataset`: a Hugging Face dataset in The Stack's schema, streamed and grouped by repository.

Listing never reads file contents; :func:`read_text` does, and turns every problem (missing, unreadable,
broken or looping symlink, too large, binary, not UTF-8, empty) into a named reason the pipeline counts.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import importlib.metadata
import logging
import os
import posixpath
import re
import stat
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# git's own test for binary content: a NUL byte in the first 8000 bytes.
BINARY_SNIFF_BYTES = 8000


@dataclass(frozen=True)
class SourceFile:
    """One file of a repository, as listed (contents are read later, in a worker)."""

    path: str  # inside the repository, "/"-separated
    size: int  # bytes on disk (or of ``content``); 0 where it cannot be known
    location: str | None = None  # where to read it; None when ``content`` is given
    content: bytes | None = None
    problem: str | None = None  # a reason already known at listing time (e.g. "broken_symlink")
    language: str | None = None  # the source's own language label, used when the extension is unknown


@dataclass(frozen=True)
class Repository:
    name: str
    files: tuple[SourceFile, ...] = field(default_factory=tuple)
    origin: str = ""  # where it was found, for the manifest

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _stat_problem(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink_loop"
    if error.errno == errno.ENOENT:
        return "missing"
    return "unreadable"


def python_environment(include_stdlib: bool = True) -> list[Repository]:
    """Every installed distribution (the files its ``RECORD`` lists) and the standard library, sorted by name."""
    repos: dict[str, Repository] = {}
    for dist in importlib.metadata.distributions():
        name = _normalise_name(dist.metadata["Name"] or "")
        if not name or name in repos:  # the first on sys.path is the one Python imports
            continue
        base = str(dist.locate_file(""))
        files = []
        for entry, recorded_size in _record(dist):
            location = os.path.normpath(os.path.join(base, entry))
            # Scripts are recorded relative to site-packages ("../../../bin/tool"); keep their in-repo tail.
            path = "/".join(p for p in entry.replace(os.sep, "/").split("/") if p not in ("", "..", "."))
            problem, size = None, recorded_size
            if size is None:  # RECORD leaves out the sizes of files written at install time (.pyc)
                try:
                    info = os.stat(location)
                    problem = None if stat.S_ISREG(info.st_mode) else "not_regular"
                    size = info.st_size
                except OSError as error:
                    problem, size = _stat_problem(error), 0
            files.append(SourceFile(path=path, size=size, location=location, problem=problem))
        repos[name] = Repository(name, _unique_paths(files), origin=base)
    if include_stdlib:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        skip = {"site-packages", "dist-packages", "__pycache__"}  # installed packages are repositories of their own
        name = f"cpython-stdlib-{sys.version_info.major}.{sys.version_info.minor}"
        repos[name] = Repository(name, tuple(_walk(stdlib, skip_names=skip)), origin=str(stdlib))
    return [repos[name] for name in sorted(repos)]


def local_repos(root: str | os.PathLike) -> list[Repository]:
    """Each folder directly under ``root`` as one repository (``root`` itself if it is a git checkout).

    ``.git/`` is skipped and ``.gitignore`` files are honoured; files lying directly in ``root`` form one
    more repository named after ``root`` so that nothing under it goes uncounted.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"local_repos: {root} is not a directory")
    if (root / ".git").exists():
        return [Repository(root.name, tuple(_walk(root)), origin=str(root))]
    repos, loose = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name == ".git":
            continue
        if entry.is_dir(follow_symlinks=False):
            repos.append(Repository(entry.name, tuple(_walk(Path(entry.path))), origin=entry.path))
        else:
            loose.append(entry.name)
    if loose:
        files = [f for f in _walk(root, only=set(loose))]
        repos.append(Repository(root.name or "root", tuple(files), origin=str(root)))
    return sorted(repos, key=lambda r: r.name)


def hub_dataset(
    name: str,
    split: str = "train",
    data_dir: str | None = None,
    data_files: str | list[str] | dict | None = None,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> list[Repository]:
    """A dataset in The Stack's schema, streamed with ``datasets`` and grouped into repositories.

    Each row holds ``content``, a path (``max_stars_repo_path`` or ``path``), a repository name
    (``max_stars_repo_name`` or ``repo_name``) and optionally ``lang``. ``name`` is a hub id, or a builder
    such as ``"parquet"``/``"json"`` with ``data_files``. Streaming stops after ``max_files`` rows or
    ``max_bytes`` bytes of content.
    """
    import datasets

    stream = datasets.load_dataset(name, data_dir=data_dir, data_files=data_files, split=split, streaming=True)
    grouped: dict[str, list[SourceFile]] = {}
    total = 0
    for i, row in enumerate(stream):
        if max_files is not None and i >= max_files:
            break
        path_key = next((k for k in ("max_stars_repo_path", "path") if row.get(k) is not None), None)
        repo_key = next((k for k in ("max_stars_repo_name", "repo_name") if row.get(k) is not None), None)
        if "content" not in row or path_key is None or repo_key is None:
            raise ValueError(
                f"hub_dataset({name!r}): row {i} lacks The Stack's columns (content, max_stars_repo_path or path, "
                f"max_stars_repo_name or repo_name); it has {sorted(row)}"
            )
        content = (row["content"] or "").encode("utf-8", "surrogatepass")
        grouped.setdefault(row[repo_key], []).append(
            SourceFile(path=row[path_key].lstrip("/"), size=len(content), content=content, language=row.get("lang"))
        )
        total += len(content)
        if max_bytes is not None and total >= max_bytes:
            break
    return [Repository(repo, _unique_paths(files), origin=name) for repo, files in sorted(grouped.items())]


def _record(dist: importlib.metadata.Distribution) -> list[tuple[str, int | None]]:
    """``(path, size or None)`` for each file a distribution's ``RECORD`` lists (``dist.files`` without one)."""
    record = dist.read_text("RECORD")
    if record is None:
        return [(str(f), f.size) for f in dist.files or ()]
    rows = csv.reader(record.splitlines())
    return [(row[0], int(row[2]) if len(row) > 2 and row[2].isdigit() else None) for row in rows if row]


def _unique_paths(files: Iterable[SourceFile]) -> tuple[SourceFile, ...]:
    """Files sorted by path; a path listed twice keeps its first entry and the rest are marked."""
    seen: set[str] = set()
    unique = []
    for f in sorted(files, key=lambda f: f.path):
        if f.path in seen:
            f = SourceFile(f.path, f.size, f.location, f.content, "duplicate_path", f.language)
        seen.add(f.path)
        unique.append(f)
    return tuple(unique)


def select_repositories(
    repos: list[Repository], max_repos: int | None = None, max_total_bytes: int | None = None, seed: int = 0
) -> tuple[list[Repository], dict[str, int]]:
    """A deterministic sample of ``repos`` (sorted by name) and a report of what was left out.

    Repositories are visited in the order of a seeded hash of their names (a fixed pseudo-random order, so
    a small sample is not all names starting with "a"); each is taken while it fits in ``max_total_bytes``
    and until ``max_repos`` are taken.
    """
    order = sorted(repos, key=lambda r: hashlib.sha256(f"{seed}:{r.name}".encode()).hexdigest())
    taken, total = [], 0
    report = {"available": len(repos), "over_byte_budget": 0, "over_max_repos": 0}
    for repo in order:
        if max_repos is not None and len(taken) >= max_repos:
            report["over_max_repos"] += 1
        elif max_total_bytes is not None and total + repo.size > max_total_bytes:
            report["over_byte_budget"] += 1
        else:
            taken.append(repo)
            total += repo.size
    report.update(selected=len(taken), selected_bytes=total)
    return sorted(taken, key=lambda r: r.name), report


class GitIgnore:
    """The patterns of one ``.gitignore`` file (gitignore(5)), matched against paths below its folder."""

    def __init__(self, lines: Iterable[str]):
        self.rules: list[tuple[re.Pattern, bool, bool]] = []  # (regex, negated, directories only)
        for line in lines:
            line = line.rstrip("\n")
            if not line.endswith("\\ "):
                line = line.rstrip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            line = line.lstrip("/")
            regex = _glob_to_regex(line)
            if not anchored:
                regex = "(?:.*/)?" + regex
            self.rules.append((re.compile(regex + r"\Z", re.DOTALL), negated, dir_only))

    def match(self, path: str, is_dir: bool) -> bool | None:
        """True if ignored, False if re-included by a ``!`` pattern, None if no pattern matches."""
        for regex, negated, dir_only in reversed(self.rules):
            if dir_only and not is_dir:
                continue
            if regex.match(path):
                return not negated
        return None


def _glob_to_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and i + 2 == len(pattern) and (i == 0 or pattern[i - 1] == "/"):
            out.append(".*")
            i += 2
        elif char == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _walk(root: Path, skip_names: frozenset[str] | set[str] = frozenset(), only: set[str] | None = None):
    """Yield the files under ``root`` as :class:`SourceFile`, sorted, honouring ``.gitignore`` files.

    Symlinks to files are followed; symlinks to folders are listed (``symlink_dir``) but not entered, so a
    link cycle cannot trap the walk; broken and looping links are listed with their problem.
    """

    def ignored(rel: str, is_dir: bool, rules: list[tuple[str, GitIgnore]]) -> bool:
        for base, spec in reversed(rules):  # deeper .gitignore files take precedence
            verdict = spec.match(rel[len(base) + 1 :] if base else rel, is_dir)
            if verdict is not None:
                return verdict
        return False

    def visit(folder: Path, rel: str, rules: list[tuple[str, GitIgnore]]):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            yield SourceFile(path=rel or ".", size=0, location=str(folder), problem=_stat_problem(error))
            return
        gitignore = folder / ".gitignore"
        if any(e.name == ".gitignore" for e in entries):
            try:
                rules = [*rules, (rel, GitIgnore(gitignore.read_text(errors="replace").splitlines()))]
            except OSError as error:
                logger.warning("cannot read %s (%s); its patterns are not applied", gitignore, error)
        for entry in entries:
            if entry.name == ".git" or entry.name in skip_names or (only is not None and entry.name not in only):
                continue
            path = posixpath.join(rel, entry.name) if rel else entry.name
            if entry.is_symlink():
                try:
                    info = os.stat(entry.path)
                except OSError as error:
                    problem = "broken_symlink" if error.errno == errno.ENOENT else _stat_problem(error)
                    if not ignored(path, False, rules):
                        yield SourceFile(path=path, size=0, location=entry.path, problem=problem)
                    continue
                is_dir = stat.S_ISDIR(info.st_mode)
                if ignored(path, is_dir, rules):
                    continue
                if is_dir:
                    yield SourceFile(path=path, size=0, location=entry.path, problem="symlink_dir")
                else:
                    problem = None if stat.S_ISREG(info.st_mode) else "not_regular"
                    yield SourceFile(path=path, size=info.st_size, location=entry.path, problem=problem)
            elif entry.is_dir(follow_symlinks=False):
                if not ignored(path, True, rules):
                    yield from visit(Path(entry.path), path, rules)
            elif not ignored(path, False, rules):
                info = entry.stat(follow_symlinks=False)
                problem = None if stat.S_ISREG(info.st_mode) else "not_regular"
                yield SourceFile(path=path, size=info.st_size, location=entry.path, problem=problem)

    yield from visit(root, "", [])


def read_text(file: SourceFile, max_bytes: int) -> tuple[str | None, str | None, int]:
    """``(text, None, bytes)`` for a readable UTF-8 text file, else ``(None, reason, bytes)``."""
    if file.problem:
        return None, file.problem, file.size
    if file.size > max_bytes:
        return None, "too_large", file.size
    if file.content is not None:
        data = file.content
    else:
        try:
            with open(file.location, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError as error:
            return None, _stat_problem(error), file.size
    if len(data) > max_bytes:  # grew after it was listed
        return None, "too_large", file.size
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None, "binary", len(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not_utf8", len(data)
    if not text.strip():
        return None, "empty", len(data)
    return text.removeprefix("\ufeff"), None, len(data)


def read_repository(repo: Repository, max_bytes: int = 1_000_000) -> dict[str, str]:
    """The readable text files of ``repo`` (path → text); the others are left out."""
    texts = {f.path: read_text(f, max_bytes) for f in repo.files}
    return {path: text for path, (text, reason, _) in texts.items() if reason is None}

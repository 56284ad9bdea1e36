"""Repository-level dependency parsing and ordering (DeepSeek-Coder §2.2, Algorithm 1).

The paper finds "invocation relations" between the files of one repository with regular expressions
(``import`` in Python, ``using`` in C#, ``include`` in C) and unpublished per-language rules. Here the
import statements come from tree-sitter parse trees and are resolved to repository paths with each
language's usual convention, chosen by us:

- Python: ``import a.b`` / ``from a.b import c`` → the most specific module file that exists: ``a/b/c.py``
  if ``c`` is a submodule, else ``a/b.py`` or ``a/b/__init__.py``, under any source root (a folder that is
  not itself a package); relative imports from the file's package.
- Java: ``import a.b.C`` → a file ending in ``a/b/C.java``; ``a.b.*`` → every ``.java`` file of ``a/b``.
- JavaScript / TypeScript: relative ``import``/``export … from``/``require()``/``import()`` specifiers,
  with the usual extensions and ``index`` files; bare package names are external.
- C / C++: ``#include "x.h"`` next to the file, else any file ending in ``x.h`` (also for ``<x.h>``).
- C#: ``using A.B`` → the ``.cs`` files of a folder ending in ``A/B`` (then ``B``), since folders mirror
  namespaces by convention; ``using static``/aliases of a type → that type's file.
- Go: an import path → the repository folder that is its longest suffix (non-test ``.go`` files).
- Rust: ``mod x;`` → ``x.rs`` or ``x/mod.rs``; ``use crate::``/``self::``/``super::`` paths → module files.
- PHP: ``use A\\B\\C`` → a file ending in ``A/B/C.php`` (PSR-4, leading namespace parts dropped as needed);
  ``require``/``include`` string paths.

When several files match, the one sharing the longest folder prefix with the importer wins.
"""

from __future__ import annotations

import heapq
import posixpath
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from functools import cache

import tree_sitter

from dslib.data.languages import detect_language
from dslib.data.syntax import grammar_for, parse, ts_language

_QUERIES: dict[str, str] = {
    "Python": "(import_statement) @import (import_from_statement) @import",
    "Java": "(import_declaration) @import",
    "JavaScript": """
        (import_statement source: (string) @path)
        (export_statement source: (string) @path)
        (call_expression function: [(identifier) (import)] @callee arguments: (arguments . (string) @path))
    """,
    "TypeScript": """
        (import_statement source: (string) @path)
        (export_statement source: (string) @path)
        (import_require_clause source: (string) @path)
        (call_expression function: [(identifier) (import)] @callee arguments: (arguments . (string) @path))
    """,
    "C": "(preproc_include path: (_) @path)",
    "C++": "(preproc_include path: (_) @path)",
    "C#": "(using_directive) @import",
    "Go": "(import_spec path: (_) @path)",
    "Rust": "(mod_item) @mod (use_declaration argument: (_) @use)",
    "PHP": """
        (namespace_use_declaration) @import
        [(require_expression) (require_once_expression) (include_expression) (include_once_expression)] @path
    """,
}
_QUERIES["TSX"] = _QUERIES["TypeScript"]

_JS_EXTENSIONS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts", ".d.ts", ".json", ".css")
_QUOTED = re.compile(r"""["'<]([^"'<>]+)["'>]""")


class RepoIndex(Collection):
    """The paths of one repository, indexed by every path suffix and by folder for import resolution."""

    def __init__(self, paths: Iterable[str]):
        self.paths = frozenset(paths)
        self.by_suffix: dict[str, list[str]] = {}
        self.folders: dict[str, list[str]] = {}
        self.folders_by_suffix: dict[str, list[str]] = {}
        for path in sorted(self.paths):
            parts = path.split("/")
            for i in range(len(parts)):
                self.by_suffix.setdefault("/".join(parts[i:]), []).append(path)
            folder = posixpath.dirname(path)
            if folder not in self.folders:
                self.folders[folder] = []
                folder_parts = folder.split("/") if folder else []
                for i in range(len(folder_parts)):
                    self.folders_by_suffix.setdefault("/".join(folder_parts[i:]), []).append(folder)
            self.folders[folder].append(path)

    def __contains__(self, path) -> bool:
        return path in self.paths

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def closest(self, candidates: Iterable[str], importer: str) -> str | None:
        """The candidate sharing the longest folder prefix with ``importer`` (then the shortest, then by name)."""
        best = None
        for path in candidates:
            if path == importer:
                continue
            shared = len(posixpath.commonpath([posixpath.dirname(path), posixpath.dirname(importer)]) or "")
            key = (-shared, path.count("/"), path)
            if best is None or key < best[0]:
                best = (key, path)
        return best[1] if best else None

    def suffix(self, suffix: str, importer: str) -> str | None:
        """The closest file whose path ends with ``suffix`` (whole path components)."""
        return self.closest(self.by_suffix.get(suffix, ()), importer)


def _text(node: tree_sitter.Node) -> str:
    return node.text.decode("utf-8", "replace")


def _normalise(folder: str, relative: str) -> str | None:
    path = posixpath.normpath(posixpath.join(folder, relative))
    return None if path.startswith(("..", "/")) else path


def _python(node: tree_sitter.Node, path: str, index: RepoIndex) -> set[str]:
    """The most specific module file each imported name resolves to (a submodule, else its package)."""
    return {target for _, target in _python_bindings(node, path, index)}


def _python_bindings(node: tree_sitter.Node, path: str, index: RepoIndex) -> list[tuple[str, str]]:
    """``(bound name, repository file)`` for each name the import statement binds that resolves to a file of the
    repository: ``import a.b`` binds ``a``, ``import a.b as x`` and ``from a import b as x`` bind ``x``;
    ``from a import *`` gives the name ``"*"``."""

    def rooted(relative: str) -> list[str]:
        # A top-level package sits in a source root: a folder that is not itself a package.
        matches = []
        for p in index.by_suffix.get(relative, ()):
            root = p[: len(p) - len(relative)].rstrip("/")
            if not root or f"{root}/__init__.py" not in index:
                matches.append(p)
        return matches

    def resolve(folder: str | None, module: str) -> str | None:
        parts = module.split(".") if module else []
        for k in range(len(parts), -1, -1):
            stem = "/".join(parts[:k])
            if folder is not None:  # relative import: from the importer's package
                stem = posixpath.join(folder, stem) if stem else folder
                options = [f"{stem}.py", f"{stem}.pyi", f"{stem}/__init__.py"] if k else [f"{stem}/__init__.py"]
                found = [o.removeprefix("/") for o in options if o.removeprefix("/") in index]
            elif k:
                found = [m for o in (f"{stem}.py", f"{stem}.pyi", f"{stem}/__init__.py") for m in rooted(o)]
            else:
                found = []
            match = index.closest(found, path)
            if match:
                return match
        return None

    def dotted(name: tree_sitter.Node) -> str:
        return _text(name.child_by_field_name("name") if name.type == "aliased_import" else name)

    def bound(name: tree_sitter.Node, module: str) -> str:
        if name.type == "aliased_import":
            return _text(name.child_by_field_name("alias"))
        return module.split(".")[0] if node.type == "import_statement" else module

    name_nodes = node.children_by_field_name("name")
    names = [dotted(n) for n in name_nodes]
    if node.type == "import_statement":
        return [(bound(n, name), m) for n, name in zip(name_nodes, names, strict=True) if (m := resolve(None, name))]
    module_node = node.child_by_field_name("module_name")
    folder, module = None, _text(module_node)
    if module_node.type == "relative_import":
        dots = len(module) - len(module.lstrip("."))
        module = module[dots:].strip()
        folder = posixpath.dirname(path)
        for _ in range(dots - 1):
            folder = posixpath.dirname(folder)
    targets = [
        (bound(n, name), f"{module}.{name}" if module else name) for n, name in zip(name_nodes, names, strict=True)
    ]
    return [(name, m) for name, target in targets or [("*", module)] if (m := resolve(folder, target))]


def python_imports(
    path: str, text: str, repo_paths: Collection[str], root: tree_sitter.Node | None = None
) -> list[tuple[str, str]]:
    """``(bound name, repository file)`` for each import of a Python file that resolves inside the repository
    (the resolution of :func:`extract_dependencies`); ``"*"`` stands for a wildcard import's names. ``root``: the
    file's parse tree, when the caller has it."""
    index = repo_paths if isinstance(repo_paths, RepoIndex) else RepoIndex(repo_paths)
    root = parse(text, "Python").root_node if root is None else root
    captures = tree_sitter.QueryCursor(_query("Python")).captures(root)
    return [
        pair for node in captures.get("import", ()) for pair in _python_bindings(node, path, index) if pair[1] != path
    ]


def _java(node: tree_sitter.Node, path: str, index: RepoIndex) -> set[str]:
    text = re.sub(r"^import\s+(static\s+)?|;$|\s", "", _text(node).strip())
    parts = text.split(".")
    if parts[-1] == "*":
        parts = parts[:-1]
        folders = index.folders_by_suffix.get("/".join(parts), ())
        files = {p for f in folders for p in index.folders[f] if p.endswith(".java") and p != path}
        if files:
            return files
    # A nested class or a static member: drop trailing names until a file matches.
    for k in range(len(parts), 0, -1):
        match = index.suffix("/".join(parts[:k]) + ".java", path)
        if match:
            return {match}
    return set()


def _javascript(specifier: str, path: str, index: RepoIndex) -> set[str]:
    if not specifier.startswith("."):
        return set()  # a package from node_modules, not a repository file
    base = _normalise(posixpath.dirname(path), specifier)
    if base is None:
        return set()
    stems = [base]
    if base.endswith((".js", ".jsx", ".mjs", ".cjs")):  # TypeScript sources import their compiled names
        stems.append(base.rsplit(".", 1)[0])
    for stem in stems:
        for candidate in [stem, *(stem + e for e in _JS_EXTENSIONS), *(f"{stem}/index{e}" for e in _JS_EXTENSIONS)]:
            if candidate in index and candidate != path:
                return {candidate}
    return set()


def _include(specifier: str, path: str, index: RepoIndex) -> set[str]:
    local = _normalise(posixpath.dirname(path), specifier)
    if local in index and local != path:
        return {local}
    parts = [p for p in posixpath.normpath(specifier).split("/") if p not in ("", ".", "..")]
    match = index.suffix("/".join(parts), path)
    return {match} if match else set()


def _csharp(node: tree_sitter.Node, path: str, index: RepoIndex) -> set[str]:
    text = re.sub(r"^(global\s+)?using\s+(static\s+)?|;$|\s", "", _text(node).strip())
    is_static = bool(re.match(r"^(global\s+)?using\s+static\b", _text(node).strip()))
    aliased = "=" in text
    parts = text.split("=")[-1].split(".")
    if is_static or aliased:  # a type: its own file
        for k in range(len(parts)):
            match = index.suffix("/".join([*parts[k:-1], parts[-1] + ".cs"]), path)
            if match:
                return {match}
    for k in range(len(parts)):
        folders = index.folders_by_suffix.get("/".join(parts[k:]), ())
        files = {p for f in folders for p in index.folders[f] if p.endswith(".cs") and p != path}
        if files:
            return files
    return set()


def _go(specifier: str, path: str, index: RepoIndex) -> set[str]:
    parts = specifier.split("/")
    for k in range(len(parts)):
        folder = "/".join(parts[k:])
        if folder in index.folders:
            return {p for p in index.folders[folder] if p.endswith(".go") and not p.endswith("_test.go") and p != path}
    return set()


def _rust_module_folder(path: str) -> str:
    """Where the child modules of the module in ``path`` live."""
    folder, name = posixpath.split(path)
    return folder if name in ("lib.rs", "main.rs", "mod.rs") else posixpath.join(folder, name[: -len(".rs")])


def _rust_crate_root(path: str, index: RepoIndex) -> str:
    folder = posixpath.dirname(path)
    while True:
        if posixpath.join(folder, "lib.rs") in index or posixpath.join(folder, "main.rs") in index:
            return folder
        if not folder:
            return posixpath.dirname(path)
        folder = posixpath.dirname(folder)


def _expand_use(tree: str) -> list[str]:
    """``a::{b, c::{d, e}}`` → ``a::b``, ``a::c::d``, ``a::c::e`` (aliases dropped)."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    items, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    return [path for item in items if item for path in _expand_use(head + item)]


def _rust(node: tree_sitter.Node, capture: str, path: str, index: RepoIndex) -> set[str]:
    def module_file(folder: str, parts: list[str]) -> str | None:
        # The longest prefix of the path that names a module file (the rest are items inside it).
        for k in range(len(parts), 0, -1):
            stem = posixpath.join(folder, *parts[:k])
            for candidate in (f"{stem}.rs", f"{stem}/mod.rs"):
                if candidate in index and candidate != path:
                    return candidate
        return None

    if capture == "mod":
        if node.child_by_field_name("body") is not None:
            return set()
        match = module_file(_rust_module_folder(path), [_text(node.child_by_field_name("name"))])
        return {match} if match else set()
    found = set()
    for use in _expand_use(_text(node)):
        parts = [p for p in use.split("::") if p and p != "*"]
        if not parts or parts[0] not in ("crate", "self", "super"):
            continue  # an external crate
        folder = _rust_crate_root(path, index) if parts[0] == "crate" else _rust_module_folder(path)
        rest = parts[1:] if parts[0] != "super" else parts
        while rest and rest[0] == "super":  # each `super` climbs to the parent module's children
            folder = posixpath.dirname(folder)
            rest = rest[1:]
        match = module_file(folder, rest) if rest else None
        if match:
            found.add(match)
    return found


def _php(node: tree_sitter.Node, capture: str, path: str, index: RepoIndex) -> set[str]:
    if capture == "path":
        strings = _QUOTED.findall(_text(node))
        return _include(strings[-1].lstrip("/"), path, index) if strings else set()
    text = re.sub(r"^use\s+(function\s+|const\s+)?|;$|\s+as\s+\w+", "", _text(node).strip())
    found = set()
    for name in _expand_use(text.replace("\\", "::")):
        parts = [p for p in name.split("::") if p]
        # PSR-4 maps a namespace prefix to some folder: drop leading parts until a file matches.
        match = next(filter(None, (index.suffix("/".join(parts[k:]) + ".php", path) for k in range(len(parts)))), None)
        if match:
            found.add(match)
    return found


def extract_dependencies(path: str, text: str, repo_paths: Collection[str]) -> set[str]:
    """The files of the repository (among ``repo_paths``) that the file at ``path`` imports (§2.2)."""
    grammar = grammar_for(path, detect_language(path))
    if grammar not in _QUERIES:
        return set()
    index = repo_paths if isinstance(repo_paths, RepoIndex) else RepoIndex(repo_paths)
    captures = tree_sitter.QueryCursor(_query(grammar)).captures(parse(text, grammar).root_node)
    found: set[str] = set()
    for capture, nodes in captures.items():
        for node in nodes:
            if grammar == "Python":
                found |= _python(node, path, index)
            elif grammar == "Java":
                found |= _java(node, path, index)
            elif grammar == "C#":
                found |= _csharp(node, path, index)
            elif grammar == "Rust":
                found |= _rust(node, capture, path, index)
            elif grammar == "PHP":
                found |= _php(node, capture, path, index)
            elif capture == "path":
                specifier = _text(node).strip("\"'`<>")
                if grammar == "Go":
                    found |= _go(specifier, path, index)
                elif grammar in ("C", "C++"):
                    found |= _include(specifier, path, index)
                elif _is_js_import(node):
                    found |= _javascript(specifier, path, index)
    found.discard(path)
    return found


def import_nodes(path: str, text: str, root: tree_sitter.Node | None = None) -> list[tree_sitter.Node]:
    """The nodes of a file's import statements that :func:`extract_dependencies` reads (``root``: its parse tree,
    when the caller has it)."""
    grammar = grammar_for(path, detect_language(path))
    if grammar not in _QUERIES:
        return []
    root = parse(text, grammar).root_node if root is None else root
    return [node for nodes in tree_sitter.QueryCursor(_query(grammar)).captures(root).values() for node in nodes]


def _is_js_import(string: tree_sitter.Node) -> bool:
    """A JS/TS string argument counts only for ``require(...)`` and ``import(...)`` calls."""
    arguments = string.parent
    if arguments is None or arguments.type != "arguments":
        return True
    callee = arguments.parent.child_by_field_name("function")
    return callee is not None and (callee.type == "import" or _text(callee) == "require")


@cache
def _query(grammar: str) -> tree_sitter.Query:
    return tree_sitter.Query(ts_language(grammar), _QUERIES[grammar])


def topological_sort(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Algorithm 1 of DeepSeek-Coder §2.2: one ordered list of files per disconnected subgraph.

    ``graph`` maps each file to the files it depends on. Edges run from a dependency to its dependents;
    each step places the unplaced file of *minimal* in-degree (ties by name) and decrements the in-degree
    of its dependents, so a cycle is broken where it has the fewest remaining dependencies instead of
    stalling as Kahn's zero-in-degree rule would. Subgraphs come in the order of their first file by name.
    """
    nodes = sorted(set(graph) | {d for deps in graph.values() for d in deps})
    dependents: dict[str, list[str]] = {f: [] for f in nodes}
    in_degree = dict.fromkeys(nodes, 0)
    for file in nodes:
        for dependency in sorted(set(graph.get(file, ())) - {file}):
            dependents[dependency].append(file)
            in_degree[file] += 1
    all_results = []
    for subgraph in _disconnected_subgraphs(nodes, graph, dependents):
        # argmin over the unplaced files, kept as a heap of (in-degree, name) with stale entries skipped.
        heap = [(in_degree[f], f) for f in subgraph]
        heapq.heapify(heap)
        placed: set[str] = set()
        results = []
        while heap:
            degree, file = heapq.heappop(heap)
            if file in placed or degree != in_degree[file]:
                continue
            placed.add(file)
            results.append(file)
            for node in dependents[file]:
                in_degree[node] -= 1
                if node not in placed:
                    heapq.heappush(heap, (in_degree[node], node))
        all_results.append(results)
    return all_results


def _disconnected_subgraphs(
    nodes: list[str], graph: Mapping[str, Iterable[str]], dependents: dict[str, list[str]]
) -> list[list[str]]:
    """Weakly connected components, each listed in name order, in the order of their first node."""
    seen: set[str] = set()
    subgraphs = []
    for start in nodes:
        if start in seen:
            continue
        seen.add(start)
        stack, component = [start], []
        while stack:
            node = stack.pop()
            component.append(node)
            for neighbour in (*graph.get(node, ()), *dependents[node]):
                if neighbour not in seen:
                    seen.add(neighbour)
                    stack.append(neighbour)
        subgraphs.append(sorted(component))
    return subgraphs


def dependency_graph(files: Mapping[str, str]) -> dict[str, set[str]]:
    """Each file of a repository (path → text) mapped to the repository files it imports."""
    index = RepoIndex(files)
    return {path: extract_dependencies(path, text, index) for path, text in files.items()}


def order_repo_files(files: Mapping[str, str]) -> list[str]:
    """A repository's paths in dependency order (each file after the files it imports; §2.2)."""
    return [path for subgraph in topological_sort(dependency_graph(files)) for path in subgraph]

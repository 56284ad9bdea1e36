"""tree-sitter parsers for the languages whose files the pipeline parses (§2.2 dependencies, §2.4 quality).

One grammar package per language (``tree_sitter_python.language()`` …), loaded on first use and cached
per process.
"""

from __future__ import annotations

import importlib
from functools import cache

import tree_sitter

# Grammar name → (package, function returning the language pointer).
GRAMMARS: dict[str, tuple[str, str]] = {
    "Python": ("tree_sitter_python", "language"),
    "Java": ("tree_sitter_java", "language"),
    "JavaScript": ("tree_sitter_javascript", "language"),
    "TypeScript": ("tree_sitter_typescript", "language_typescript"),
    "TSX": ("tree_sitter_typescript", "language_tsx"),
    "C": ("tree_sitter_c", "language"),
    "C++": ("tree_sitter_cpp", "language"),
    "C#": ("tree_sitter_c_sharp", "language"),
    "Go": ("tree_sitter_go", "language"),
    "Rust": ("tree_sitter_rust", "language"),
    "PHP": ("tree_sitter_php", "language_php"),
    "Shell": ("tree_sitter_bash", "language"),
}


def grammar_for(path: str, language: str | None) -> str | None:
    """The grammar that parses a file of ``language`` (TSX files need their own), or ``None`` if there is none."""
    if language == "TypeScript" and path.lower().endswith(".tsx"):
        return "TSX"
    return language if language in GRAMMARS else None


@cache
def ts_language(grammar: str) -> tree_sitter.Language:
    package, function = GRAMMARS[grammar]
    return tree_sitter.Language(getattr(importlib.import_module(package), function)())


@cache
def _parser(grammar: str) -> tree_sitter.Parser:
    return tree_sitter.Parser(ts_language(grammar))


def parse(text: str, grammar: str) -> tree_sitter.Tree:
    return _parser(grammar).parse(text.encode("utf-8", "surrogatepass"))

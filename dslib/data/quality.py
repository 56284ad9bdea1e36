"""Quality screening (DeepSeek-Coder §2.4): files that do not parse are dropped as ``syntax_error``.

The paper uses "a compiler and a quality model, combined with heuristic rules"; here the compiler is
Python's own ``compile()`` for Python and a tree-sitter parse (an ``ERROR`` or ``MISSING`` node anywhere)
for the other languages with a grammar. Files of languages without one pass unchecked.
"""

from __future__ import annotations

import warnings

from dslib.data.syntax import grammar_for, parse


def syntax_error_reason(path: str, text: str, language: str | None) -> str | None:
    """``"syntax_error"`` when ``text`` does not parse as ``language``, else ``None``."""
    if language == "Python":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences and the like are warnings, not errors
                compile(text, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return "syntax_error"
        return None
    grammar = grammar_for(path, language)
    if grammar is not None and parse(text, grammar).root_node.has_error:
        return "syntax_error"
    return None

"""Which names a file takes from the other files of its repository, from tree-sitter parse trees.

The completion points of :mod:`dslib.eval.crossfile` (CrossCodeEval's: a line whose answer needs a name
defined in another file) come from here, with the imports resolved by the dependency parser of §2.2
(:mod:`dslib.data.deps`):

- Python: each name an import binds to a repository file (``import a.b`` binds ``a``; aliases; ``from m
  import *`` brings ``m``'s public top-level names), unless the file binds it again itself.
- The other languages the dependency parser resolves (Java, JavaScript, TypeScript, C, C++, C#, Go, Rust, PHP):
  the top-level declarations (classes, functions, types, constants, exported variables) of the files the
  file imports, unless the file declares the same name. A name counts where it appears as an identifier,
  a type or a member after a dot (``pkg.Name`` in Go, ``Util.go()`` in Java).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from functools import cache, lru_cache

import tree_sitter

from dslib.data import deps
from dslib.data.languages import detect_language
from dslib.data.syntax import grammar_for, parse, ts_language

LANGUAGES = ("Python", "Java", "JavaScript", "TypeScript", "C", "C++", "C#", "Go", "Rust", "PHP")
# Where Python binds a name: a definition, an assignment target, a parameter, an ``as`` alias.
_BINDINGS = """
(function_definition name: (identifier) @name)
(class_definition name: (identifier) @name)
(assignment left: (_) @target)
(augmented_assignment left: (_) @target)
(for_statement left: (_) @target)
(for_in_clause left: (_) @target)
(as_pattern alias: (as_pattern_target (_) @target))
(named_expression name: (identifier) @name)
(parameters (identifier) @name)
(lambda_parameters (identifier) @name)
(default_parameter name: (identifier) @name)
(typed_parameter . (identifier) @name)
(typed_default_parameter name: (identifier) @name)
(list_splat_pattern (identifier) @name)
(dictionary_splat_pattern (identifier) @name)
"""
# One pass over a Python file's tree: its bindings, every identifier, and its import statements.
_FILE_QUERY = _BINDINGS + "(identifier) @id (import_statement) @import (import_from_statement) @import"
# Other languages: a declaration's name, the nodes a top-level declaration may sit in, and the leaves that use one.
_DECLARES = re.compile(r"(declaration|definition|_item|_spec|specifier|declarator|preproc_def|preproc_function_def)$")
_CONTAINERS = frozenset(
    {
        "export_statement", "lexical_declaration", "variable_declaration", "declaration", "type_declaration",
        "const_declaration", "var_declaration", "declaration_list", "namespace_declaration", "namespace_definition",
        "file_scoped_namespace_declaration", "preproc_ifdef", "preproc_if", "preproc_else", "linkage_specification",
        "template_declaration", "type_definition", "function_declarator", "init_declarator", "compilation_unit",
    }
)  # fmt: skip
_LEAVES = frozenset({"identifier", "type_identifier", "field_identifier", "property_identifier", "name"})
_NOT_DECLARATIONS = ("import", "package", "using", "namespace_use", "use_")
_STATEMENT = re.compile(r"(statement|declaration|directive|include|_item|_expression)$")


@cache
def _query(source: str) -> tree_sitter.Query:
    return tree_sitter.Query(ts_language("Python"), source)


def _captures(source: str, node: tree_sitter.Node) -> dict[str, list[tree_sitter.Node]]:
    return tree_sitter.QueryCursor(_query(source)).captures(node)


def _target_names(node: tree_sitter.Node) -> set[str]:
    if node.type == "identifier":
        return {node.text.decode()}
    if node.type in ("pattern_list", "tuple_pattern", "list_pattern", "tuple", "list", "parenthesized_expression"):
        return set().union(*(_target_names(child) for child in node.named_children))
    if node.type in ("list_splat_pattern", "list_splat"):
        return set().union(*(_target_names(child) for child in node.named_children))
    return set()  # an attribute or a subscript binds no name of this file


def defined_names(root: tree_sitter.Node, captures: dict | None = None) -> set[str]:
    """The names a Python module binds anywhere (definitions, assignments, parameters, aliases), imports aside."""
    captures = _captures(_BINDINGS, root) if captures is None else captures
    names = {n.text.decode() for n in captures.get("name", ())}
    return names.union(*(_target_names(n) for n in captures.get("target", ())))


@lru_cache(maxsize=256)  # a module imported with * by many files of its repository is parsed once
def _top_level_names(text: str) -> frozenset[str]:
    """What ``from module import *`` brings in: the module's top-level definitions (no leading underscore)."""
    root = parse(text, "Python").root_node
    names: set[str] = set()
    for child in root.named_children:
        node = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
        if node is not None and node.type in ("function_definition", "class_definition"):
            names.add(node.child_by_field_name("name").text.decode())
        elif child.type == "expression_statement" and child.named_children[0].type == "assignment":
            names |= _target_names(child.named_children[0].child_by_field_name("left"))
    return frozenset(n for n in names if not n.startswith("_"))


def _python_uses(identifiers: Sequence[tree_sitter.Node], names: Collection[str]) -> list[tuple[int, str]]:
    """``(line, name)`` for each of ``names`` read as a name: not an attribute after a dot, not a keyword argument."""
    found = []
    for node in identifiers:
        name = node.text.decode()
        if name not in names:
            continue
        parent = node.parent
        if parent is not None and parent.type == "attribute" and parent.child_by_field_name("attribute") == node:
            continue
        if parent is not None and parent.type == "keyword_argument" and parent.child_by_field_name("name") == node:
            continue
        found.append((node.start_point.row, name))
    return found


def _python(path: str, text: str, files: Mapping[str, str], index: deps.RepoIndex, root: tree_sitter.Node):
    bound: dict[str, str] = {}
    for name, source in deps.python_imports(path, text, index, root):
        if name == "*":
            bound.update({n: source for n in _top_level_names(files[source]) if n not in bound})
        else:
            bound[name] = source
    captures = _captures(_FILE_QUERY, root)
    for name in defined_names(root, captures):
        bound.pop(name, None)
    skip = {row for node in captures.get("import", ()) for row in range(node.start_point.row, node.end_point.row + 1)}
    return bound, _python_uses(captures.get("id", ()), bound), skip


def declared_names(root: tree_sitter.Node) -> set[str]:
    """The names a file declares at its top level (inside exports, namespaces, header guards): any language."""
    names: set[str] = set()
    stack = list(root.named_children)
    while stack:
        node = stack.pop()
        if _DECLARES.search(node.type) and not node.type.startswith(_NOT_DECLARATIONS):
            name = node.child_by_field_name("name") or node.child_by_field_name("declarator")
            if name is not None and name.type in _LEAVES:
                names.add(name.text.decode())
            elif name is not None:
                stack.append(name)  # C: a function or pointer declarator around the name
        if node.type in _CONTAINERS:
            stack.extend(node.named_children)
    return names


def _statement_rows(node: tree_sitter.Node) -> range:
    while node.parent is not None and node.parent.parent is not None and not _STATEMENT.search(node.type):
        node = node.parent
    return range(node.start_point.row, node.end_point.row + 1)


def _generic(path: str, text: str, files: Mapping[str, str], index: deps.RepoIndex, root: tree_sitter.Node):
    bound: dict[str, str] = {}
    for source in sorted(deps.extract_dependencies(path, text, index)):
        source_grammar = grammar_for(source, detect_language(source))
        if source_grammar is None:
            continue
        for name in declared_names(parse(files[source], source_grammar).root_node):
            bound.setdefault(name, source)
    for name in declared_names(root):
        bound.pop(name, None)
    skip = {row for node in deps.import_nodes(path, text, root) for row in _statement_rows(node)}
    uses, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.type in _LEAVES and node.child_count == 0:
            name = node.text.decode()
            if name in bound:
                uses.append((node.start_point.row, name))
        else:
            stack.extend(node.named_children)
    return bound, uses, skip


def file_uses(
    path: str, text: str, files: Mapping[str, str], index: deps.RepoIndex
) -> tuple[str | None, dict[str, str], dict[int, set[str]]]:
    """``(skip reason, bound, used)`` for one file: ``bound`` maps each name the file takes from another file of
    the repository to that file, ``used`` each line outside the imports to the bound names it uses. The skip
    reason is ``"syntax_error"`` (the file does not parse) or ``"no_imports"`` (it takes no name)."""
    language = detect_language(path)
    root = parse(text, grammar_for(path, language)).root_node
    if root.has_error:
        return "syntax_error", {}, {}
    bound, uses, skip = (_python if language == "Python" else _generic)(path, text, files, index, root)
    if not bound:
        return "no_imports", {}, {}
    used: dict[int, set[str]] = {}
    for row, name in uses:
        if row not in skip:
            used.setdefault(row, set()).add(name)
    return None, bound, used

"""Dependency parsing and Algorithm 1 (DeepSeek-Coder §2.2): brute-force order checks and per-language imports."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dslib.data.deps import RepoIndex, dependency_graph, extract_dependencies, order_repo_files, topological_sort
from dslib.data.sources import python_environment, read_text


def algorithm1_reference(files, has_dependency):
    """A line-by-line transcription of the paper's Algorithm 1 (ties broken by name), slow on purpose."""
    graphs = {f: [] for f in files}
    in_degree = dict.fromkeys(files, 0)
    for file_a in files:
        for file_b in files:
            if file_a != file_b and has_dependency(file_a, file_b):
                graphs[file_b].append(file_a)
                in_degree[file_a] += 1
    # getDisconnectedSubgraphs: undirected connectivity by repeated merging.
    component = {f: f for f in files}
    changed = True
    while changed:
        changed = False
        for b in files:
            for a in graphs[b]:
                low = min(component[a], component[b])
                if component[a] != low or component[b] != low:
                    for f in files:
                        if component[f] in (component[a], component[b]):
                            component[f] = low
                    changed = True
    subgraphs = [sorted(f for f in files if component[f] == c) for c in sorted(set(component.values()))]
    all_results = []
    for subgraph in subgraphs:
        results = []
        while len(results) != len(subgraph):
            file = min((f for f in subgraph if f not in results), key=lambda f: (in_degree[f], f))
            for node in graphs[file]:
                in_degree[node] -= 1
            results.append(file)
        all_results.append(results)
    return all_results


graphs = st.integers(min_value=1, max_value=9).flatmap(
    lambda n: st.fixed_dictionaries(
        {f"f{i}": st.sets(st.sampled_from([f"f{j}" for j in range(n)]), max_size=3) for i in range(n)}
    )
)


@settings(max_examples=150, deadline=None)
@given(graphs)
def test_topological_sort_is_algorithm1(graph):
    files = sorted(graph)
    expected = algorithm1_reference(files, lambda a, b: b in graph[a])
    assert topological_sort(graph) == expected


def _reaches(graph, start):
    seen, stack = set(), [start]
    while stack:
        for dep in graph.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


@settings(max_examples=150, deadline=None)
@given(st.permutations(range(8)), st.sets(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20))
def test_acyclic_graphs_put_every_dependency_first(ranks, pairs):
    # Edges only from a higher-ranked file to a lower-ranked one: a DAG.
    graph = {f"f{i}": set() for i in range(8)}
    for a, b in pairs:
        if ranks[a] > ranks[b]:
            graph[f"f{a}"].add(f"f{b}")
    result = topological_sort(graph)
    flat = [f for subgraph in result for f in subgraph]
    assert sorted(flat) == sorted(graph)
    for subgraph in result:
        position = {f: i for i, f in enumerate(subgraph)}
        for file in subgraph:
            for dep in graph[file]:
                assert position[dep] < position[file], (file, dep, subgraph)
    # Subgraphs are exactly the weakly connected components.
    undirected = {f: set(d) for f, d in graph.items()}
    for f, deps in graph.items():
        for d in deps:
            undirected[d].add(f)
    assert sorted(tuple(sorted(s)) for s in result) == sorted(
        {tuple(sorted(_reaches(undirected, f) | {f})) for f in graph}
    )


def test_cycles_are_broken_at_minimal_in_degree():
    # a → b → c → a (each depends on the next) and d depends on a; every in-degree starts at 1.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    # Worked by hand: all tie at 1, so "a" goes first; then c and d drop to 0 and c wins the tie; then b.
    assert topological_sort(graph) == [["a", "c", "b", "d"], ["e"]]
    assert topological_sort({"x": {"x"}}) == [["x"]]  # a self-import is not a dependency


def test_dependencies_only_named_in_the_graph_are_nodes():
    assert topological_sort({"main.py": {"util.py"}}) == [["util.py", "main.py"]]


REPO = {
    "pkg/__init__.py": "from .core import run\n",
    "pkg/core.py": "import pkg.util\nfrom . import helpers\nfrom .sub.deep import thing\nimport os\n",
    "pkg/util.py": "x = 1\n",
    "pkg/helpers.py": "from pkg import util\n",
    "pkg/os.py": "",
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": "from ..util import x\n",
    "scripts/run.py": "import pkg\nfrom pkg.core import run\nimport helper\n",
    "scripts/helper.py": "",
    "src/main/java/com/foo/Bar.java": "package com.foo;\nimport com.foo.util.*;\nimport static com.foo.Baz.qux;\n",
    "src/main/java/com/foo/Baz.java": "package com.foo; class Baz {}",
    "src/main/java/com/foo/util/U.java": "package com.foo.util; class U {}",
    "web/app.js": 'import x from "./lib";\nconst y = require("../web/lib/b.js");\nimport("./c.mjs");\n'
    'import _ from "lodash";\nfoo("./d.js");',
    "web/lib/index.ts": 'export * from "./b.js";',
    "web/lib/b.ts": "export const b = 1;",
    "web/c.mjs": "",
    "web/d.js": "",
    "csrc/main.c": '#include "util.h"\n#include <inc/api.h>\n#include <stdio.h>\nint main(void) { return 0; }',
    "csrc/util.h": "",
    "include/inc/api.h": "",
    "cs/Program.cs": "using System;\nusing App.Models;\nusing static App.Util.Helpers;\nnamespace App { class P {} }",
    "cs/Models/User.cs": "namespace App.Models { class User {} }",
    "cs/Models/Post.cs": "namespace App.Models { class Post {} }",
    "cs/Util/Helpers.cs": "namespace App.Util { static class Helpers {} }",
    "go/main.go": 'package main\nimport (\n "fmt"\n "github.com/u/r/go/pkg/sub"\n)\n',
    "go/pkg/sub/a.go": "package sub",
    "go/pkg/sub/a_test.go": "package sub",
    "rs/src/lib.rs": "mod foo;\npub mod inline { }\nuse crate::bar::baz::Thing;\nuse std::io;\n",
    "rs/src/foo.rs": "mod child;\nuse super::bar::{baz, qux::Q};\n",
    "rs/src/foo/child.rs": "use super::super::bar::baz;\nuse self::x;\n",
    "rs/src/bar/mod.rs": "pub mod baz;\n",
    "rs/src/bar/baz.rs": "",
    "rs/src/bar/qux.rs": "",
    "php/index.php": "<?php\nuse App\\Models\\User;\nuse App\\Models\\{Post, Comment as C};\n"
    'require_once __DIR__ . "/lib/a.php";\ninclude "b.php";\n',
    "php/app/Models/User.php": "<?php class User {}",
    "php/app/Models/Post.php": "<?php class Post {}",
    "php/app/Models/Comment.php": "<?php class Comment {}",
    "php/lib/a.php": "<?php",
    "php/b.php": "<?php",
}
EXPECTED = {
    "pkg/__init__.py": {"pkg/core.py"},
    "pkg/core.py": {"pkg/util.py", "pkg/helpers.py", "pkg/sub/deep.py"},  # `import os` is not pkg/os.py
    "pkg/helpers.py": {"pkg/util.py"},
    "pkg/sub/deep.py": {"pkg/util.py"},
    "scripts/run.py": {"pkg/__init__.py", "pkg/core.py", "scripts/helper.py"},
    "src/main/java/com/foo/Bar.java": {"src/main/java/com/foo/Baz.java", "src/main/java/com/foo/util/U.java"},
    "web/app.js": {"web/lib/index.ts", "web/lib/b.ts", "web/c.mjs"},  # foo("./d.js") is not an import
    "web/lib/index.ts": {"web/lib/b.ts"},
    "csrc/main.c": {"csrc/util.h", "include/inc/api.h"},
    "cs/Program.cs": {"cs/Models/User.cs", "cs/Models/Post.cs", "cs/Util/Helpers.cs"},
    "go/main.go": {"go/pkg/sub/a.go"},
    "rs/src/lib.rs": {"rs/src/foo.rs", "rs/src/bar/baz.rs"},
    "rs/src/foo.rs": {"rs/src/foo/child.rs", "rs/src/bar/baz.rs", "rs/src/bar/qux.rs"},
    "rs/src/foo/child.rs": {"rs/src/bar/baz.rs"},
    "rs/src/bar/mod.rs": {"rs/src/bar/baz.rs"},
    "php/index.php": {
        "php/app/Models/User.php",
        "php/app/Models/Post.php",
        "php/app/Models/Comment.php",
        "php/lib/a.php",
        "php/b.php",
    },
}


@pytest.mark.parametrize("path", sorted(REPO))
def test_extract_dependencies_per_language(path):
    assert extract_dependencies(path, REPO[path], RepoIndex(REPO)) == EXPECTED.get(path, set())


def test_extract_dependencies_accepts_a_plain_path_list():
    assert extract_dependencies("pkg/helpers.py", REPO["pkg/helpers.py"], list(REPO)) == {"pkg/util.py"}
    assert extract_dependencies("notes.md", "import pkg", list(REPO)) == set()


def test_order_repo_files_on_a_real_package():
    """datasketch, as installed: every import that is not part of a cycle comes before its importer."""
    [repo] = [r for r in python_environment(include_stdlib=False) if r.name == "datasketch"]
    files = {}
    for f in repo.files:
        text, reason, _ = read_text(f, 1_000_000)
        if reason is None and f.path.endswith(".py"):
            files[f.path] = text
    order = order_repo_files(files)
    assert sorted(order) == sorted(files)
    graph = dependency_graph(files)
    assert "datasketch/minhash.py" in graph["datasketch/lsh.py"]  # `from datasketch.minhash import MinHash`
    position = {f: i for i, f in enumerate(order)}
    for file, deps in graph.items():
        for dep in deps:
            if file not in _reaches(graph, dep):  # not in a cycle with it
                assert position[dep] < position[file], (dep, file)

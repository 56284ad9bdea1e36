"""Language identification by extension and file name (DeepSeek-Coder §2, Table 1).

The paper keeps 87 programming languages (Table 1; the repository README lists them). A file whose
name maps to none of them gets ``None`` and the pipeline counts it as ``unknown_language``. The
mapping follows GitHub Linguist's primary extensions for each language.
"""

from __future__ import annotations

from pathlib import PurePosixPath

# Table 1 languages → the extensions that identify them (lower case, with the dot).
LANGUAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "Ada": (".adb", ".ads", ".ada"),
    "Agda": (".agda",),
    "Alloy": (".als",),
    "ANTLR": (".g4",),
    "AppleScript": (".applescript", ".scpt"),
    "Assembly": (".asm", ".s", ".nasm"),
    "Augeas": (".aug",),
    "Awk": (".awk",),
    "Batchfile": (".bat", ".cmd"),
    "Bluespec": (".bsv",),
    "C": (".c", ".h"),
    "C#": (".cs",),
    "Clojure": (".clj", ".cljs", ".cljc", ".edn"),
    "CMake": (".cmake",),
    "CoffeeScript": (".coffee",),
    "Common Lisp": (".lisp", ".lsp", ".cl"),
    "C++": (".cpp", ".cc", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".inl", ".tpp"),
    "CSS": (".css",),
    "CUDA": (".cu", ".cuh"),
    "Dart": (".dart",),
    "Dockerfile": (".dockerfile",),
    "Elixir": (".ex", ".exs"),
    "Elm": (".elm",),
    "Emacs Lisp": (".el",),
    "Erlang": (".erl", ".hrl"),
    "F#": (".fs", ".fsi", ".fsx"),
    "Fortran": (".f", ".for", ".f77", ".f90", ".f95", ".f03", ".f08"),
    "GLSL": (".glsl", ".vert", ".frag", ".geom", ".comp"),
    "Go": (".go",),
    "Groovy": (".groovy", ".gradle"),
    "Haskell": (".hs", ".hsc"),
    "HTML": (".html", ".htm", ".xhtml"),
    "Idris": (".idr",),
    "Isabelle": (".thy",),
    "Java": (".java",),
    "Java Server Pages": (".jsp",),
    "JavaScript": (".js", ".mjs", ".cjs", ".jsx"),
    "JSON": (".json", ".jsonl", ".geojson", ".jsonc"),
    "Julia": (".jl",),
    "Jupyter": (".ipynb",),
    "Kotlin": (".kt", ".kts"),
    "Lean": (".lean",),
    "Literate Agda": (".lagda",),
    "Literate CoffeeScript": (".litcoffee",),
    "Literate Haskell": (".lhs",),
    "Lua": (".lua",),
    "Makefile": (".mk", ".mak"),
    "Maple": (".mpl",),
    "Markdown": (".md", ".markdown"),
    "Mathematica": (".nb", ".wl"),
    "Matlab": (".m",),
    "OCaml": (".ml", ".mli"),
    "Pascal": (".pas", ".pp", ".dpr"),
    "Perl": (".pl", ".pm", ".t"),
    "PHP": (".php", ".phtml"),
    "PowerShell": (".ps1", ".psm1", ".psd1"),
    "Prolog": (".pro", ".prolog"),
    "Protocol Buffer": (".proto",),
    "Python": (".py", ".pyi", ".pyw"),
    "R": (".r",),
    "Racket": (".rkt",),
    "reStructuredText": (".rst",),
    "RMarkdown": (".rmd",),
    "Ruby": (".rb", ".rake", ".gemspec"),
    "Rust": (".rs",),
    "SAS": (".sas",),
    "Scala": (".scala", ".sc"),
    "Scheme": (".scm", ".ss"),
    "Shell": (".sh", ".bash", ".zsh", ".ksh"),
    "Smalltalk": (".st",),
    "Solidity": (".sol",),
    "SPARQL": (".sparql", ".rq"),
    "SQL": (".sql",),
    "Stan": (".stan",),
    "Standard ML": (".sml",),
    "Stata": (".do", ".ado"),
    "SystemVerilog": (".sv", ".svh"),
    "Tcl": (".tcl",),
    "Tcsh": (".tcsh", ".csh"),
    "TeX": (".tex", ".sty", ".cls", ".bib"),
    "Thrift": (".thrift",),
    "TypeScript": (".ts", ".tsx", ".mts", ".cts"),
    "Verilog": (".v", ".vh"),
    "VHDL": (".vhd", ".vhdl"),
    "Visual Basic": (".vb", ".bas", ".vbs"),
    "XSLT": (".xslt", ".xsl"),
    "Yacc": (".y", ".yy"),
    "YAML": (".yaml", ".yml"),
    "Zig": (".zig",),
}

# Files recognised by their whole name (lower case) rather than an extension.
LANGUAGE_FILENAMES: dict[str, str] = {
    "dockerfile": "Dockerfile",
    "containerfile": "Dockerfile",
    "makefile": "Makefile",
    "gnumakefile": "Makefile",
    "cmakelists.txt": "CMake",
    "rakefile": "Ruby",
    "gemfile": "Ruby",
    ".bashrc": "Shell",
    ".bash_profile": "Shell",
    ".zshrc": "Shell",
}

_BY_EXTENSION = {ext: lang for lang, exts in LANGUAGE_EXTENSIONS.items() for ext in exts}

# How each language writes a one-line comment, for the path header of §2.2 ("a comment indicating the
# file's path is added at the beginning of each file"). Languages not listed use "#".
_SLASH = ("//", "")
_DASH = ("--", "")
_PERCENT = ("%", "")
_SEMICOLON = (";", "")
_C_STYLE = (
    "C", "C#", "C++", "CUDA", "Dart", "Go", "Groovy", "Java", "JavaScript", "JSON", "Kotlin", "PHP", "Protocol Buffer",
    "Rust", "Scala", "Solidity", "SystemVerilog", "Thrift", "TypeScript", "Verilog", "Zig", "GLSL", "ANTLR", "Alloy",
    "Bluespec", "F#", "Pascal", "Stan", "Yacc", "Java Server Pages",
)  # fmt: skip
_COMMENT_SYNTAX: dict[str, tuple[str, str]] = {
    **dict.fromkeys(_C_STYLE, _SLASH),
    **dict.fromkeys(("SQL", "Haskell", "Lua", "Ada", "Elm", "Idris", "Agda", "VHDL", "AppleScript"), _DASH),
    **dict.fromkeys(("TeX", "Erlang", "Matlab", "Prolog"), _PERCENT),
    **dict.fromkeys(("Common Lisp", "Emacs Lisp", "Clojure", "Scheme", "Racket", "Assembly"), _SEMICOLON),
    "HTML": ("<!--", " -->"),
    "Markdown": ("<!--", " -->"),
    "XSLT": ("<!--", " -->"),
    "RMarkdown": ("<!--", " -->"),
    "CSS": ("/*", " */"),
    "OCaml": ("(*", " *)"),
    "Standard ML": ("(*", " *)"),
    "Mathematica": ("(*", " *)"),
    "Isabelle": ("(*", " *)"),
    "Fortran": ("!", ""),
    "Visual Basic": ("'", ""),
    "Batchfile": ("REM", ""),
    "reStructuredText": ("..", ""),
    "Smalltalk": ('"', ' "'),
    "Literate Haskell": ("--", ""),
    "Literate Agda": ("--", ""),
}


def detect_language(path: str) -> str | None:
    """The Table 1 language of ``path`` from its file name or extension, or ``None`` when it has none."""
    name = PurePosixPath(path).name.lower()
    if name in LANGUAGE_FILENAMES:
        return LANGUAGE_FILENAMES[name]
    if name.startswith("dockerfile."):
        return "Dockerfile"
    suffix = PurePosixPath(name).suffix
    return _BY_EXTENSION.get(suffix)


def path_comment(path: str, language: str | None) -> str:
    """The line that heads a file in a repository sample: its path in the language's comment syntax."""
    opener, closer = _COMMENT_SYNTAX.get(language or "", ("#", ""))
    return f"{opener} {path}{closer}"

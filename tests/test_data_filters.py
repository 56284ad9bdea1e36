"""Language identification (Table 1) and the §2.1 rule filters, each rule checked at its boundary by hand."""

import pytest

from dslib import paper
from dslib.config import DataConfig
from dslib.data.filters import html_visible_text, rule_filter_reason
from dslib.data.languages import LANGUAGE_EXTENSIONS, detect_language, path_comment

# The 87 languages of DeepSeek-Coder's Table 1 (and the repository README's list), plus reStructuredText.
TABLE1 = """Ada Agda Alloy ANTLR AppleScript Assembly Augeas Awk Batchfile Bluespec C C# Clojure CMake CoffeeScript
Common_Lisp C++ CSS CUDA Dart Dockerfile Elixir Elm Emacs_Lisp Erlang F# Fortran GLSL Go Groovy Haskell HTML Idris
Isabelle Java Java_Server_Pages JavaScript JSON Julia Jupyter Kotlin Lean Literate_Agda Literate_CoffeeScript
Literate_Haskell Lua Makefile Maple Markdown Mathematica Matlab OCaml Pascal Perl PHP PowerShell Prolog
Protocol_Buffer Python R Racket reStructuredText RMarkdown Ruby Rust SAS Scala Scheme Shell Smalltalk Solidity SPARQL
SQL Stan Standard_ML Stata SystemVerilog Tcl Tcsh TeX Thrift TypeScript Verilog VHDL Visual_Basic XSLT Yacc YAML Zig"""


def test_every_table1_language_is_covered_once():
    expected = {name.replace("_", " ") for name in TABLE1.split()}
    assert set(LANGUAGE_EXTENSIONS) == expected
    extensions = [e for exts in LANGUAGE_EXTENSIONS.values() for e in exts]
    assert len(extensions) == len(set(extensions)), "an extension maps to two languages"
    assert set(paper.TABLE1.rows) <= expected  # the languages the paper gives shares for


@pytest.mark.parametrize(
    "path, language",
    [
        ("pkg/mod.py", "Python"),
        ("stubs/x.pyi", "Python"),
        ("a/B.java", "Java"),
        ("x.TSX", "TypeScript"),
        ("include/x.h", "C"),
        ("src/x.hpp", "C++"),
        ("Dockerfile", "Dockerfile"),
        ("docker/Dockerfile.dev", "Dockerfile"),
        ("CMakeLists.txt", "CMake"),
        ("GNUmakefile", "Makefile"),
        ("notes.ipynb", "Jupyter"),
        ("transform.xsl", "XSLT"),
        ("LICENSE", None),
        ("data.bin", None),
        ("README.txt", None),
    ],
)
def test_detect_language(path, language):
    assert detect_language(path) == language


def test_path_comment_uses_each_language_syntax():
    assert path_comment("a/b.py", "Python") == "# a/b.py"
    assert path_comment("A.java", "Java") == "// A.java"
    assert path_comment("i.html", "HTML") == "<!-- i.html -->"
    assert path_comment("s.css", "CSS") == "/* s.css */"
    assert path_comment("q.sql", "SQL") == "-- q.sql"
    assert path_comment("x.unknown", None) == "# x.unknown"


CONFIG = DataConfig()


def _lines(length: int, count: int = 3) -> str:
    return "\n".join("a" * length for _ in range(count)) + "\n"


def test_line_length_rules_at_their_boundaries():
    assert rule_filter_reason(_lines(100), "Python") is None  # average exactly 100 is kept
    assert rule_filter_reason(_lines(101), "Python") == "avg_line_length"
    long_line = "a" * 1000 + "\n" + "b\n" * 20
    assert rule_filter_reason(long_line, "Python") is None  # exactly 1000 is kept
    assert rule_filter_reason("a" + long_line, "Python") == "max_line_length"


def test_alphabetic_fraction_counts_letters_not_digits():
    assert (
        rule_filter_reason("a" * 10 + "1" * 90, "Python") == "alpha_fraction"
    )  # StarCoder's alphanumeric would keep it
    text = "a" * 25 + "1" * 75  # exactly 25% letters is kept
    assert rule_filter_reason(text, "Python") is None
    assert rule_filter_reason("a" * 24 + "1" * 76, "Python") == "alpha_fraction"
    assert rule_filter_reason("é" * 30 + " " * 70, "Python") is None  # Unicode letters are alphabetic


def test_xml_header_rule_spares_xslt():
    xml = '<?xml version="1.0"?>\n<root>' + "text " * 30 + "</root>\n"
    assert rule_filter_reason(xml, None) == "xml_header"
    assert rule_filter_reason(xml, "XSLT") is None
    late = "<!-- a header comment that pushes the declaration past one hundred characters -->\n" * 2 + xml
    assert rule_filter_reason(late, None) is None  # only the first 100 characters count


def test_html_visible_text_rule():
    words = "Some visible words here.\n" * 8  # 199 visible characters once whitespace collapses
    page = f"<html><body><p>\n{words}</p></body></html>\n"
    assert rule_filter_reason(page, "HTML") is None
    scripted = f"<html><script>\n{'var x = 1;' * 100}\n</script><p>\n{words}</p></html>\n".replace(";", ";\n")
    assert html_visible_text(scripted) == " ".join(words.split())
    assert rule_filter_reason(scripted, "HTML") == "html_visible_text"  # visible < 20% of the file

    def paragraph(*lengths):
        return "<p>\n" + "\n".join("w" * n for n in lengths) + "\n</p>\n"

    assert len(html_visible_text(paragraph(*[9] * 10))) == 99
    assert rule_filter_reason(paragraph(*[9] * 10), "HTML") == "html_visible_text"  # < 100 visible characters
    assert rule_filter_reason(paragraph(*[9] * 9, 10), "HTML") is None


@pytest.mark.parametrize("language", ["JSON", "YAML"])
def test_json_yaml_size_window(language):
    def doc(n):  # n characters in short lines, so only the size rule can apply
        return ("ab\n" * n)[: n - 1] + "\n"

    assert len(doc(50)) == 50
    assert rule_filter_reason(doc(49), language) == "json_yaml_size"
    assert rule_filter_reason(doc(50), language) is None
    assert rule_filter_reason(doc(5000), language) is None
    assert rule_filter_reason(doc(5001), language) == "json_yaml_size"
    assert rule_filter_reason(doc(49), "Python") is None  # the window applies to JSON and YAML only


def test_thresholds_come_from_the_config():
    strict = DataConfig(max_avg_line_length=10)
    assert rule_filter_reason(_lines(11), "Python", strict) == "avg_line_length"
    assert rule_filter_reason(_lines(11), "Python", CONFIG) is None

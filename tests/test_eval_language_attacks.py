"""Adversarial programs in every language of multilingual HumanEval: each ends as a failed sample, leaves no
process running, touches no file outside its folder, reaches no network and cannot include a private file."""

import pytest

from dslib.eval import adversarial, languages

EVERY_LANGUAGE = {
    "endless loop",
    "fork bomb",
    "overwrite a file outside",
    "delete a file outside",
    "network connection",
    "output flood",
}
COMPILE_BOMB, INCLUDE = "compile that does not end (or a compiler bomb)", "include a private file outside"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    """Every language attack, run two at a time (each run has its own uid where that is possible)."""
    return adversarial.refusals(adversarial.LANGUAGE_ATTACKS, workers=2)


def test_each_language_tries_every_attack():
    tried: dict[str, set[str]] = {}
    for attack in adversarial.LANGUAGE_ATTACKS:
        tried.setdefault(attack.language, set()).add(attack.name)
    assert set(tried) == set(languages.LANGUAGES)
    for language, names in tried.items():
        assert names >= EVERY_LANGUAGE, language
        if languages.LANGUAGES[language].compile is not None:
            assert COMPILE_BOMB in names, language
    for language in ("cpp", "ts", "php", "sh", "js"):  # the languages with a textual include
        assert INCLUDE in tried[language], language


@pytest.mark.parametrize("language", sorted(languages.LANGUAGES))
def test_every_attack_fails_and_is_contained(rows, language):
    reason = languages.unavailable(language)
    if reason:
        pytest.skip(reason)
    mine = [r for r in rows if r["language"] == language]
    ran = [r for r in mine if "passed" in r]
    assert ran, f"every {language} attack was skipped: {mine}"
    for row in ran:
        what = (language, row["attack"], row["status"], row["detail"])
        assert not row["passed"] and row["status"] != "passed", what
        assert row["processes left"] == 0, what
        assert row["canary intact"], what
        assert not row["network reached"], what
        assert row["status"] != "sandbox_error", what
    by_name = {r["attack"]: r["status"] for r in ran}
    assert by_name["endless loop"] == "timeout"
    if COMPILE_BOMB in by_name:
        assert by_name[COMPILE_BOMB] in ("timeout", "compile_error")
    if INCLUDE in by_name and languages.LANGUAGES[language].compile is not None:
        assert by_name[INCLUDE] == "compile_error"


def test_nothing_is_left_running_after_all_attacks(rows):
    # Each row counted its own run's leftovers (by the run's uid as root); this looks for any run's processes.
    assert rows and not adversarial.stray_processes()

"""Benchmark generation on a random-weight checkpoint in the released format (config.json, safetensors,
tokenizer files), checked token for token against ``transformers``' greedy decoding of the same folder."""

import json

import pytest
import torch

from dslib.config import EvalConfig, ModelConfig
from dslib.eval import humaneval, infilling, report
from dslib.eval.generation import load_hf_model, subset
from dslib.fim import fim_prompt
from dslib.generate import truncate_at_stop
from dslib.model import Transformer, to_hf
from dslib.tokenizer import save_tokenizer, train_tokenizer

transformers = pytest.importorskip("transformers")

LEARNED = 400  # a tiny vocabulary; the 22 added tokens follow at the released offsets


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-weight checkpoint folder shaped like ``ensure_pretrained()``'s and the released models'."""
    problems = humaneval.load_problems()
    texts = [p["prompt"] + p["canonical_solution"] for p in problems.values()]
    tokenizer = train_tokenizer(texts, vocab_size=LEARNED, show_progress=False)
    config = ModelConfig(
        vocab_size=-(-(LEARNED + 22) // 128) * 128,
        bos_token_id=LEARNED + 13,
        eos_token_id=LEARNED + 14,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=10_000.0,
    )
    torch.manual_seed(0)
    model = Transformer(config)
    with torch.no_grad():  # spread the logits so that greedy choices are far from ties
        model.lm_head.weight.mul_(30)
    path = tmp_path_factory.mktemp("random-checkpoint")
    to_hf(model, path)
    save_tokenizer(tokenizer, path)
    return path


@pytest.fixture(scope="module")
def reference(checkpoint):
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    return model, tokenizer


def greedy_reference(reference, prompt: str, max_new_tokens: int, stop: tuple[str, ...]) -> str:
    model, tokenizer = reference
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    eos = model.config.eos_token_id
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    return truncate_at_stop(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True), stop)


def test_humaneval_completions_match_transformers_greedy(checkpoint, reference):
    model, tokenizer = load_hf_model(checkpoint, device="cpu")
    problems = humaneval.load_problems()
    chosen = {t: problems[t] for t in subset(list(problems), 3)}
    config = EvalConfig(max_new_tokens=12, batch_size=2)  # batches of unequal prompts: left padding in play
    samples = humaneval.generate_completions(model, tokenizer, chosen, config, progress=False)
    assert [s["task_id"] for s in samples] == list(chosen)
    for sample in samples:
        prompt = chosen[sample["task_id"]]["prompt"].strip()
        assert sample["completion"] == "\n" + greedy_reference(reference, prompt, 12, humaneval.STOP_WORDS)


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_infilling_lines_match_transformers_greedy(checkpoint, reference, mode):
    model, tokenizer = load_hf_model(checkpoint, device="cpu")
    tasks = subset(infilling.single_line_tasks(), 3)
    config = EvalConfig(max_new_tokens=10, batch_size=3)
    result = infilling.evaluate_infilling(model, tokenizer, tasks, mode, config, execute=False, progress=False)
    expected = [
        infilling.first_line(greedy_reference(reference, fim_prompt(t["prefix"], t["suffix"], mode), 10, ("\n",)))
        for t in tasks
    ]
    assert [r["line"] for r in result["records"]] == expected
    assert result["mode"] == mode and result["tasks"] == 3


def test_evaluate_model_end_to_end_is_deterministic(checkpoint):
    model, tokenizer = load_hf_model(checkpoint)
    config = EvalConfig(humaneval_limit=2, infilling_limit=3, max_new_tokens=8, batch_size=2, timeout=5.0)
    first = humaneval.evaluate_model(model, tokenizer, config, k=(1,), progress=False)
    again = humaneval.evaluate_model(model, tokenizer, config, k=(1,), progress=False)
    assert first["problems"] == 2 and len(first["samples"]) == 2
    assert 0.0 <= first["pass@1"] <= 1.0
    assert [s["completion"] for s in first["samples"]] == [s["completion"] for s in again["samples"]]
    assert all(s["status"] for s in first["samples"])
    fim = infilling.evaluate_infilling(model, tokenizer, config=config, progress=False)
    assert fim["tasks"] == 3 and {"exact_match", "pass@1", "records"} <= fim.keys()


def test_sampling_gives_n_reproducible_samples(checkpoint):
    model, tokenizer = load_hf_model(checkpoint)
    problems = humaneval.load_problems()
    chosen = {t: problems[t] for t in subset(list(problems), 2)}
    config = EvalConfig(n_samples=3, temperature=0.8, top_p=0.95, max_new_tokens=6, batch_size=4)
    first = humaneval.generate_completions(model, tokenizer, chosen, config, progress=False)
    again = humaneval.generate_completions(model, tokenizer, chosen, config, progress=False)
    assert [s["task_id"] for s in first] == [t for t in chosen for _ in range(3)]
    assert first == again


def test_command_line_evaluates_a_checkpoint_folder(checkpoint, tmp_path, capsys):
    copy = report.random_checkpoint(tmp_path / "copy", like=checkpoint, seed=1)
    assert {p.name for p in copy.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    args = [str(copy), "--device", "cpu", "--humaneval-limit", "2", "--infilling-limit", "2", "--max-new-tokens", "4"]
    assert report.main([*args, "--modes", "psm", "spm", "--output", str(tmp_path / "result.json")]) == 0
    table = capsys.readouterr().out
    assert "HumanEval (Python) pass@1" in table and "34.8" in table  # beside DeepSeek-Coder-Base 1.3B
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["humaneval"]["problems"] == 2 and set(result["infilling"]) == {"psm", "spm"}
    with pytest.raises(SystemExit):
        report.main([str(tmp_path)])  # no config.json: a clear usage error


def test_paper_model_for_picks_the_nearest_release():
    assert report.paper_model_for(10_000) == "DeepSeek-Coder-Base 1.3B"
    assert report.paper_model_for(7_000_000_000) == "DeepSeek-Coder-Base 6.7B"
    assert report.paper_model_for(30_000_000_000) == "DeepSeek-Coder-Base 33B"

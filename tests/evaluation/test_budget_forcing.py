"""Budget forcing on a tiny random model: exact thinking budget, exact number of "Wait"s, always an answer.

The model's weights are random, so its choices are scripted with a logits processor: it thinks `think_every`
tokens then emits the thinking stop token (or never stops), and ends its answer with <|im_end|> after
`answer_len` tokens. Marker tokens are suppressed elsewhere so that only budget forcing can insert them.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from qwen_recipes.evaluation.budget_forcing import BudgetConfig, HFBackend, budget_force, render_prompt
from qwen_recipes.testbed import build_tokenizer, tiny_model

QUESTION = "What is 2 + 3?"


class Script(LogitsProcessor):
    """Force the stop token every `think_every` thinking tokens and <|im_end|> after `answer_len` answer tokens."""

    def __init__(self, tok, config: BudgetConfig, prompt_len: int, think_every: int | None, answer_len: int):
        enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
        self.prompt_len, self.think_every, self.answer_len = prompt_len, think_every, answer_len
        self.start, self.end, self.final = (
            enc(config.thinking_start),
            enc(config.thinking_end),
            enc(config.final_answer),
        )
        self.wait = enc(config.ignore_str)
        self.stop = enc(config.thinking_stop[0])[0]
        self.im_end = tok.convert_tokens_to_ids("<|im_end|>")
        self.suppress = sorted({*self.start, *self.end, *self.final, *self.wait, self.stop, self.im_end, 151643})

    def _force(self, scores: torch.Tensor, token: int) -> torch.Tensor:
        forced = torch.full_like(scores, float("-inf"))
        forced[:, token] = 0.0
        return forced

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        gen = input_ids[0, self.prompt_len :].tolist()
        scores = scores.clone()
        scores[:, self.suppress] = float("-inf")
        n = len(self.end)
        ends = [i for i in range(len(gen) - n + 1) if gen[i : i + n] == self.end]
        if ends:  # answer phase
            after = gen[ends[-1] + n :]
            if after[: len(self.final)] == self.final:
                after = after[len(self.final) :]
            return self._force(scores, self.im_end) if len(after) >= self.answer_len else scores
        w = len(self.wait)
        anchors = [len(self.start) - 1] + [i + w - 1 for i in range(len(gen) - w + 1) if gen[i : i + w] == self.wait]
        since = len(gen) - 1 - max(anchors)
        if self.think_every is not None and since >= self.think_every:
            return self._force(scores, self.stop)
        return scores


def run(family: str, config: BudgetConfig, think_every: int | None, answer_len: int = 3):
    tok = build_tokenizer(family)
    prompt = render_prompt(tok, QUESTION)
    script = Script(tok, config, len(tok.encode(prompt)), think_every, answer_len)
    backend = HFBackend(tiny_model(family), pad_token_id=tok.pad_token_id, logits_processor=[script])
    (out,) = budget_force(backend, tok, [prompt], config)
    return tok, out


def count(ids: list[int], sub: list[int]) -> int:
    return sum(ids[i : i + len(sub)] == sub for i in range(len(ids) - len(sub) + 1))


def test_budget_is_exact_when_the_model_never_stops():
    config = BudgetConfig(max_thinking_tokens=9, num_ignore=2, max_answer_tokens=20)
    _tok, out = run("qwen2_5", config, think_every=None)
    assert out.thinking_tokens == 9
    assert out.extensions == 0 and out.budget_exhausted
    sep = "" if out.thinking.endswith("\n") else "\n"
    assert out.text == "<|im_start|>think" + out.thinking + sep + "<|im_start|>answer" + out.answer
    assert out.answer.startswith("\nFinal Answer:")
    assert len(out.answer_ids) == 3 and out.answer_finished  # ended with <|im_end|> after 3 answer tokens


def test_wait_is_inserted_the_requested_number_of_times():
    config = BudgetConfig(max_thinking_tokens=100, num_ignore=2, ignore_str="Wait")
    tok, out = run("qwen2_5", config, think_every=3)
    wait = tok.encode("Wait", add_special_tokens=False)
    assert out.extensions == 2 and count(out.thinking_ids, wait) == 2
    assert out.thinking_tokens == 3 * 3 + 2 * len(wait)  # three thinking rounds of 3 tokens, two "Wait"s
    assert out.thinking_ids[3 : 3 + len(wait)] == wait
    assert not out.budget_exhausted and "Final Answer:" not in out.answer
    assert out.text == "<|im_start|>think" + out.thinking + "<|im_start|>answer" + out.answer
    assert len(out.answer_ids) == 3 and out.answer_finished


def test_budget_wins_over_extensions():
    # 4 tokens, Wait (5), 4 tokens (9), Wait (10) -> budget spent: the answer is forced after exactly 10.
    config = BudgetConfig(max_thinking_tokens=10, num_ignore=5, ignore_str="Wait")
    _tok, out = run("qwen2_5", config, think_every=4)
    assert out.thinking_tokens == 10
    assert out.extensions == 2 and out.budget_exhausted
    assert out.answer.startswith("\nFinal Answer:") and out.answer_finished


def test_custom_extension_string_and_no_room_for_it():
    # 4 tokens, extension (n tokens), 4 tokens, stop: n - 1 tokens of budget left, so the second extension does not
    # fit and the answer is forced without going one token over the budget.
    ext = "Let me double-check."
    tok = build_tokenizer("qwen2_5")
    ext_ids = tok.encode(ext, add_special_tokens=False)
    n = len(ext_ids)
    assert n > 1
    config = BudgetConfig(max_thinking_tokens=4 + n + 4 + n - 1, num_ignore=3, ignore_str=ext)
    tok, out = run("qwen2_5", config, think_every=4)
    assert out.thinking_tokens == 4 + n + 4
    assert out.extensions == 1 and count(out.thinking_ids, ext_ids) == 1
    assert out.budget_exhausted and out.answer.startswith("\nFinal Answer:")


def test_qwen3_think_markers():
    config = BudgetConfig.for_markers("qwen3", max_thinking_tokens=50, num_ignore=1)
    _, out = run("qwen3", config, think_every=2)
    assert out.extensions == 1 and out.thinking_tokens == 2 + 1 + 2
    assert out.text == "<think>\n" + out.thinking + "</think>\n\n" + out.answer
    assert out.prompt.endswith("<|im_start|>assistant\n")
    # Forced answer for Qwen3: "\n</think>\n\nFinal Answer:".
    config = BudgetConfig.for_markers("qwen3", max_thinking_tokens=5)
    _tok, out = run("qwen3", config, think_every=None)
    assert out.thinking_tokens == 5 and out.answer.startswith("Final Answer:")
    assert "</think>\n\nFinal Answer:" in out.text and out.answer_finished


def test_answer_is_forced_even_with_zero_budget():
    config = BudgetConfig(max_thinking_tokens=0, num_ignore=1)
    _tok, out = run("qwen2_5", config, think_every=None)
    assert out.thinking_tokens == 0 and out.budget_exhausted
    assert out.text.startswith("<|im_start|>think\n<|im_start|>answer\nFinal Answer:")


def test_prompt_has_default_system_prompt():
    tok = build_tokenizer("qwen2_5")
    assert render_prompt(tok, "hi") == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_config_errors_are_collected():
    with pytest.raises(ValueError) as e:
        BudgetConfig(max_thinking_tokens=-1, num_ignore=-2, max_answer_tokens=0).validate()
    msg = str(e.value)
    assert "max_thinking_tokens=-1" in msg and "num_ignore=-2" in msg and "max_answer_tokens=0" in msg
    with pytest.raises(ValueError, match="known: s1, qwen3"):
        BudgetConfig.for_markers("r1")


def test_eval_script_writes_per_question_rows_and_summary(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    from qwen_recipes.testbed import save_tiny_checkpoint

    script = Path(__file__).resolve().parents[2] / "eval" / "s1_eval.py"
    spec = importlib.util.spec_from_file_location("s1_eval", script)
    s1_eval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(s1_eval)
    model = save_tiny_checkpoint(tmp_path / "tiny", "qwen2_5")
    aime = tmp_path / "aime.jsonl"
    aime.write_text(
        "".join(json.dumps({"problem": f"What is {i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(3))
    )
    gpqa = tmp_path / "gpqa.jsonl"
    row = {
        "Question": "Which is a noble gas?",
        "Correct Answer": "Argon",
        "Incorrect Answer 1": "Oxygen",
        "Incorrect Answer 2": "Nitrogen",
        "Incorrect Answer 3": "Hydrogen",
    }
    gpqa.write_text(json.dumps(row) + "\n")
    rc = s1_eval.main(
        [
            "--model",
            str(model),
            "--benchmarks",
            "aime24,gpqa_diamond",
            "--data",
            f"aime24={aime}",
            "--data",
            f"gpqa_diamond={gpqa}",
            "--limit",
            "2",
            "--max-thinking-tokens",
            "6",
            "--max-answer-tokens",
            "3",
            "--backend",
            "hf",
        ]
    )
    assert rc == 0
    out = model / "eval_s1"
    rows = [json.loads(line) for line in (out / "aime24.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in rows] == ["0", "2"]
    assert all(r["thinking_tokens"] <= 6 and "<|im_start|>answer" in r["response"] for r in rows)
    (g,) = [json.loads(line) for line in (out / "gpqa_diamond.jsonl").read_text().splitlines()]
    assert "A) " in g["question"] and g["gold"] in "ABCD" and "Argon" in g["question"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmarks"]["aime24"]["questions"] == 2 and summary["settings"]["markers"] == "s1"
    printed = capsys.readouterr().out
    assert "| s1.1-32B (budget forcing) | 56.7 | 95.4 | 63.6 |" in printed
    assert "| **this run** |" in (out / "summary.md").read_text()

"""s1K / s1K-1.1 formatting: exact text, exact token masks, the prepare CLI and its statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_recipes.data.formats import SkipRow, get_preprocessor
from qwen_recipes.data.prepare.s1k import length_stats, s1k_1_1_row, s1k_main, s1k_row
from qwen_recipes.data.templates import official_template, training_template
from qwen_recipes.testbed import build_tokenizer

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
IM_START, IM_END = 151644, 151645


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("qwen2_5")


# Expected assistant texts, written out by hand from the fixture rows and simplescaling/s1 data/tokenization.py:
# pieces joined with "\n" then stripped; "Answer: " prefixed unless the attempt contains "Answer:"; then stripped.
S1K_EXPECTED = [
    "<|im_start|>think\nLet the sides be a and b. Then 2(a + b) = 26, so a + b = 13, and ab = 40.\n"
    "They are the roots of x^2 - 13x + 40 = 0, which factors as (x - 5)(x - 8).\n"
    "So the sides are 5 and 8; the longer is 8.\n<|im_start|>answer\n"
    "Answer: The sides are the roots of x^2 - 13x + 40 = 0, namely 5 and 8.\n\nThe longer side is $\\boxed{8}$ cm.",
    "<|im_start|>think\n360 = 8 * 45 = 2^3 * 3^2 * 5.\nThe number of divisors is (3+1)(2+1)(1+1) = 24.\n"
    "<|im_start|>answer\n360 = 2^3 \\cdot 3^2 \\cdot 5, so the count is 4 \\cdot 3 \\cdot 2.\n\n"
    "Final Answer: The final answer is $\\boxed{24}$",
    "<|im_start|>think\nDry air is about 78% nitrogen, 21% oxygen, 0.9% argon and 0.04% CO2.\nSo nitrogen.\n"
    "<|im_start|>answer\nNitrogen is about 78% of dry air by volume.\n\nAnswer: B",
]
S1K_1_1_DEEPSEEK_EXPECTED = [
    "<|im_start|>think\nOkay, so I need 7^100 mod 5. First, 7 is congruent to 2 mod 5.\n\n"
    "The powers of 2 mod 5: 2, 4, 8 = 3, 16 = 1. So the cycle has length 4.\n\n"
    "Wait, 100 / 4 = 25 exactly, so 2^100 = (2^4)^25 = 1 mod 5.\n\nSo the remainder is 1.\n<|im_start|>answer\n"
    "Answer: Because $7 \\equiv 2 \\pmod 5$ and $2^4 \\equiv 1 \\pmod 5$,\n"
    "$$7^{100} \\equiv (2^4)^{25} \\equiv 1 \\pmod 5.$$\n\n**Final Answer**\n\\boxed{1}",
    "<|im_start|>think\nMultiplication first: 1/4 * 1 = 1/4. Then 3/4 - 1/4 = 2/4 = 1/2.\n<|im_start|>answer\n"
    "The expression equals $\\frac{2}{4} = \\frac{1}{2}$. Answer: $\\dfrac{1}{2}$",
    "<|im_start|>think\nFrom rest, d = (1/2) g t^2. t^2 = 4, so d = 0.5 * 9.8 * 4 = 19.6 m.\n<|im_start|>answer\n"
    "Answer: Using $d = \\tfrac12 g t^2 = \\tfrac12 (9.8)(2.0)^2 = 19.6$ m, the ball falls $\\boxed{19.6\\ \\text{m}}$.",
]


@pytest.mark.parametrize("i", range(3))
def test_s1k_text_exact(i):
    raw = rows("s1k_fixture.jsonl")[i]
    out = s1k_row(raw)
    assert out == {
        "messages": [{"role": "user", "content": raw["question"]}, {"role": "assistant", "content": S1K_EXPECTED[i]}]
    }


@pytest.mark.parametrize("i", range(3))
def test_s1k_1_1_deepseek_text_exact(i):
    raw = rows("s1k_1_1_fixture.jsonl")[i]
    assert s1k_1_1_row(raw, trace="deepseek")["messages"][1]["content"] == S1K_1_1_DEEPSEEK_EXPECTED[i]
    assert s1k_1_1_row(raw)["messages"][0] == {"role": "user", "content": raw["question"]}


def test_s1k_1_1_gemini_trace():
    raw = rows("s1k_1_1_fixture.jsonl")
    assert s1k_1_1_row(raw[0], trace="gemini")["messages"][1]["content"] == (
        "<|im_start|>think\n7 mod 5 is 2. Powers of 2 mod 5 cycle 2, 4, 3, 1 with period 4. 100 is divisible by 4, "
        "so the remainder is 1.\n<|im_start|>answer\nAnswer: Since $2^4 \\equiv 1 \\pmod 5$ and $7 \\equiv 2$, "
        "$7^{100} \\equiv 1$. The remainder is $\\boxed{1}$."
    )
    # Already contains "Answer:" -> no second prefix.
    assert s1k_1_1_row(raw[1], trace="gemini")["messages"][1]["content"].endswith("answer\nAnswer: $\\frac{1}{2}$")


def test_rendered_text_matches_s1k_tokenized(tok):
    """With Qwen2.5's template the whole text is what s1's tokenization.py pushes as s1K_tokenized."""
    raw = rows("s1k_fixture.jsonl")[2]
    text = tok.apply_chat_template(s1k_row(raw)["messages"], chat_template=official_template("qwen2_5"), tokenize=False)
    assert text == (
        SYSTEM
        + "<|im_start|>user\n"
        + raw["question"]
        + "<|im_end|>\n<|im_start|>assistant\n"
        + S1K_EXPECTED[2]
        + "<|im_end|>\n"
    )
    # The training template renders the same text.
    assert (
        tok.apply_chat_template(s1k_row(raw)["messages"], chat_template=training_template("qwen2_5"), tokenize=False)
        == text
    )


@pytest.mark.parametrize(("name", "convert"), [("s1k_fixture.jsonl", s1k_row), ("s1k_1_1_fixture.jsonl", s1k_1_1_row)])
def test_masks_cover_think_answer_and_im_end(tok, name, convert):
    for raw in rows(name):
        messages = convert(raw)["messages"]
        enc = tok.apply_chat_template(
            messages,
            chat_template=training_template("qwen2_5"),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, mask = enc["input_ids"], enc["assistant_masks"]
        trained = [t for t, m in zip(ids, mask, strict=True) if m]
        first = mask.index(1)
        last = len(mask) - 1 - mask[::-1].index(1)
        assert all(mask[first : last + 1]), "the trained span is contiguous"
        # Prompt side: default system prompt + user turn + assistant header, all without loss.
        prompt = tok.decode(ids[:first])
        assert prompt == SYSTEM + "<|im_start|>user\n" + messages[0]["content"] + "<|im_end|>\n<|im_start|>assistant\n"
        assert tok.encode(SYSTEM) == ids[: len(tok.encode(SYSTEM))]
        assert not any(mask[: len(tok.encode(SYSTEM))])
        # Trained side: <|im_start|>think ... <|im_start|>answer ... <|im_end|>; the final "\n" is not trained.
        assert trained == tok.encode(messages[1]["content"] + "<|im_end|>")
        assert trained[0] == IM_START and tok.decode(trained[1:3]) == "think\n"
        assert trained.count(IM_START) == 2 and trained[-1] == IM_END
        assert ids[last + 1 :] == tok.encode("\n") and mask[last + 1 :] == [0]


def test_qwen3_style_renders_native_think_block():
    tok3 = build_tokenizer("qwen3")
    raw = rows("s1k_1_1_fixture.jsonl")[1]
    messages = s1k_1_1_row(raw, style="qwen3")["messages"]
    assert messages[1] == {
        "role": "assistant",
        "reasoning_content": "Multiplication first: 1/4 * 1 = 1/4. Then 3/4 - 1/4 = 2/4 = 1/2.",
        "content": "The expression equals $\\frac{2}{4} = \\frac{1}{2}$. Answer: $\\dfrac{1}{2}$",
    }
    enc = tok3.apply_chat_template(
        messages,
        chat_template=training_template("qwen3"),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok3.decode(trained) == (
        "<think>\n" + messages[1]["reasoning_content"] + "\n</think>\n\n" + messages[1]["content"] + "<|im_end|>"
    )
    assert tok3.decode(enc["input_ids"]).startswith("<|im_start|>user\n" + raw["question"])  # no system prompt


def test_registered_preprocessors_and_bad_rows():
    raw = rows("s1k_1_1_fixture.jsonl")[0]
    assert get_preprocessor("s1k_1.1")(raw, **{"trace": "deepseek"}) == s1k_1_1_row(raw)
    assert get_preprocessor("s1k")(rows("s1k_fixture.jsonl")[0]) == s1k_row(rows("s1k_fixture.jsonl")[0])
    with pytest.raises(SkipRow) as e:
        s1k_row({**rows("s1k_fixture.jsonl")[0], "thinking_trajectories": ["  ", "\n"]})
    assert e.value.reason == "empty reasoning"
    with pytest.raises(SkipRow) as e:
        s1k_1_1_row({**raw, "deepseek_attempt": None})
    assert e.value.reason == "missing field"
    with pytest.raises(ValueError, match="known: deepseek, gemini"):
        s1k_1_1_row(raw, trace="r1")


def test_length_stats_nearest_rank():
    stats = length_stats(list(range(20, 0, -1)))
    assert (stats["count"], stats["total_tokens"], stats["mean"]) == (20, 210, 10.5)
    assert (stats["p50"], stats["p95"], stats["max"]) == (10, 19, 20)
    assert stats["over_block"]["4096"] == 0


def test_prepare_cli_writes_rows_and_stats(tmp_path, tok, capsys):
    out, stats_path = tmp_path / "s1k11.jsonl", tmp_path / "stats.json"
    rc = s1k_main(
        [
            "--dataset",
            str(SAMPLES / "s1k_1_1_fixture.jsonl"),
            "--out",
            str(out),
            "--stats",
            str(stats_path),
            "--tokenizer",
            "qwen2_5",
        ]
    )
    assert rc == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == [s1k_1_1_row(r) for r in rows("s1k_1_1_fixture.jsonl")]
    lengths = sorted(
        len(tok.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]) for r in written
    )
    stats = json.loads(stats_path.read_text())
    assert stats["schema"] == "s1k_1.1" and stats["trace"] == "deepseek"
    assert (stats["count"], stats["max"], stats["p50"], stats["total_tokens"]) == (
        3,
        lengths[-1],
        lengths[1],
        sum(lengths),
    )
    assert f"max={lengths[-1]}" in capsys.readouterr().out


def test_prepare_cli_reports_bad_trace(tmp_path, capsys):
    rc = s1k_main(
        [
            "--dataset",
            str(SAMPLES / "s1k_1_1_fixture.jsonl"),
            "--out",
            str(tmp_path / "x.jsonl"),
            "--trace",
            "claude",
            "--tokenizer",
            "qwen2_5",
        ]
    )
    assert rc == 2
    assert "known: deepseek, gemini" in capsys.readouterr().err

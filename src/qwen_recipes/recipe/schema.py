"""The recipe schema: our own keys as typed dataclasses with help text, and our defaults for a few TRL keys.

A recipe is one flat YAML mapping. Its keys are TRL's own names (`SFTConfig`/`DPOConfig`/`GRPOConfig`/...
fields and `ModelConfig` fields, snapshotted in `trl_fields.json`) plus the keys below. Nested blocks (`datasets`,
`reported`) have their own dataclasses. A key's default is ours (here) or TRL's (the snapshot); `Recipe.get` is
the only reader, so no call site carries a literal default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

TASKS = ("sft", "cpt", "dpo", "orpo", "simpo", "grpo")
METHODS = ("full", "lora", "qlora")
# Which TRL config class carries the training keys of each task.
TASK_CONFIG = {
    "sft": "SFTConfig",
    "cpt": "SFTConfig",
    "dpo": "DPOConfig",
    "orpo": "ORPOConfig",
    "simpo": "CPOConfig",
    "grpo": "GRPOConfig",
}
DATA_FORMATS = ("auto", "messages", "text", "alpaca", "sharegpt", "prompt_completion", "preference", "prompt")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DatasetSpec:
    """One data source of a recipe's `datasets:` list."""

    path: str = _f("", "Local JSONL/JSON/Parquet/CSV file or folder (relative to the recipe), or a Hub dataset id.")
    name: str | None = _f(None, "Dataset config name for a Hub dataset (e.g. 'main' for gsm8k).")
    split: str = _f("train", "Split to load.")
    revision: str | None = _f(None, "Hub revision of the dataset.")
    format: str = _f("auto", f"Row format: one of {', '.join(DATA_FORMATS)}. 'auto' infers it from the columns.")
    columns: dict[str, str] = _f(
        {},
        "Map our field names to the dataset's columns, e.g. {messages: conversations} or "
        "{instruction: question, output: answer}. Fields: messages, text, instruction, input, output, system, "
        "prompt, completion, chosen, rejected, reasoning.",
    )
    samples: int | None = _f(
        None,
        "Use exactly this many rows, shuffled with the recipe seed; a source with fewer usable rows is an error "
        "(use weight: to repeat rows).",
    )
    weight: float | None = _f(
        None, "Scale the usable row count: 0.5 keeps half (shuffled), 2.0 repeats every row twice. Not with samples."
    )
    system_prompt: str | None = _f(None, "System message added to rows that have none.")
    preprocess: str | None = _f(
        None, "Name of a registered row converter applied first (e.g. 's1k', 's1k_1.1'); see qwen_recipes.data.formats."
    )
    preprocess_args: dict[str, Any] = _f({}, "Keyword arguments of the `preprocess` converter.")


@dataclass
class Reported:
    """What a published run reported: the numbers a reproduction recipe is checked against."""

    source: str = _f("", "URL of the paper, repository or model card the numbers come from.")
    hardware: str | None = _f(None, "Hardware as reported, e.g. '16xH100'.")
    wall_time_minutes: float | None = _f(None, "Reported wall-clock training time in minutes.")
    gpu_hours: float | None = _f(None, "Reported GPU-hours, when a run published those rather than a wall time.")
    cost_usd: float | None = _f(None, "Reported cost in US dollars (as stated, e.g. 'under $50' -> 50).")
    framework: str | None = _f(None, "Training code and sharding as published, e.g. 'LLaMA-Factory, ZeRO-3 offload'.")
    rows: int | None = _f(None, "Training rows (prompts for RL) of one epoch, as published.")
    epochs: float | None = _f(None, "Epochs as published.")
    max_length: int | None = _f(None, "Sequence length (cutoff; RL: the completion cap) as published.")
    tokens: int | None = _f(
        None, "Training tokens of one epoch if published or counted; empty when unknown, never guess."
    )
    tokens_how: str | None = _f(
        None, "How `tokens` was obtained ('published: <where>', 'counted: <command>'), or why it is unknown."
    )
    assumed_tokens_per_row: int | None = _f(
        None,
        "Token count unpublished: tokens per row the estimate assumes (name the comparable published dataset in "
        "notes); the band spans half to twice it.",
    )
    notes: str | None = _f(None, "Anything a reader needs to interpret the numbers.")


@dataclass
class RecipeArgs:
    """Keys that are ours rather than TRL's."""

    base: list[str] = _f([], "Recipe file(s) to inherit from, relative to this recipe; merged left to right.")
    task: Literal["sft", "cpt", "dpo", "orpo", "simpo", "grpo"] = _f(
        "sft", "sft: chat data, loss on assistant tokens. cpt: plain text, loss on all tokens. dpo/orpo/simpo/grpo."
    )
    method: Literal["full", "lora", "qlora"] = _f("lora", "full fine-tune, LoRA, or QLoRA (4-bit nf4 base).")
    datasets: list[DatasetSpec] = _f([], "Training data sources (a mixture when several).")
    eval_datasets: list[DatasetSpec] = _f([], "Evaluation data sources.")
    strict: bool = _f(False, "Turn every skipped row into an error naming its file and row.")
    dedup: bool = _f(
        False,
        "Drop exact duplicate rows (compared after conversion, across all sources). They are counted either way.",
    )
    overwrite_output_dir: bool = _f(
        False,
        "Train into an output_dir that holds another run's outputs, removing them first (checkpoints included). "
        "Without it such a folder is refused unless the recipe resumes (resume_from_checkpoint).",
    )
    overlong: Literal["truncate", "drop"] = _f(
        "truncate", "Rows longer than max_length: truncate them (TRL) or drop them (counted in the run report)."
    )
    base_model_id: str | None = _f(
        None, "Hub id of the base model for model cards when model_name_or_path is a local path."
    )
    description: str | None = _f(None, "One line on what this recipe is for.")
    hardware: str | None = _f(None, "Target hardware, e.g. '1xH100-80GB' or '16xH100'.")
    accelerate_config: str | None = _f(None, "The configs/accelerate/*.yaml file this recipe is meant for.")
    price_per_gpu_hour: float | None = _f(None, "USD per GPU-hour for cost reports (default: the price table).")
    dataset_tokens: int | None = _f(None, "Training tokens per epoch, when known, for cost estimates before data.")
    reported: Reported | None = _f(None, "Published numbers this recipe reproduces (source, hardware, time, cost).")
    experts_implementation: Literal["eager", "grouped_mm", "batched_mm"] | None = _f(
        None,
        "MoE expert kernels (transformers' experts_implementation): grouped_mm (one grouped GEMM; transformers' "
        "default, eager where it cannot run), eager (a loop over experts), batched_mm (gathers each routed token's "
        "expert weights: memory grows with the batch, for small-batch generation). Unset: transformers' choice.",
    )
    output_router_logits: bool | None = _f(
        None,
        "MoE: compute the router load-balancing loss, add router_aux_loss_coef x it to the loss and log it as "
        "aux_loss. Unset: on for SFT/DPO at the checkpoint's coefficient (0.001 for Qwen3-MoE and Qwen3.5-MoE), off "
        "for GRPO; false turns it off.",
    )
    rewards: list[str] = _f([], "GRPO reward function names (see qwen_recipes.training.rewards).")
    reward_kwargs: dict[str, Any] = _f({}, "Keyword arguments per reward name, e.g. {length: {max_tokens: 512}}.")
    # Vision-language models (Qwen2.5-VL, Qwen3-VL, or an LLM composed with `vision_encoder`): docs/vision.md.
    image_min_pixels: int | None = _f(
        None,
        "Images smaller than this many pixels (height x width) are upscaled; each LM token covers (patch x merge)^2 "
        "pixels (28x28 on Qwen2.5-VL, 32x32 on Qwen3-VL). None: the checkpoint's preprocessor_config.json.",
    )
    image_max_pixels: int | None = _f(
        None,
        "Images larger than this many pixels are downscaled (bounds tokens per image: 401408 = 512 tokens on "
        "Qwen2.5-VL). None: the checkpoint's own (Qwen2.5-VL 12845056 = 16384 tokens).",
    )
    video_min_pixels: int | None = _f(None, "Like image_min_pixels, per video frame. None: the video processor's own.")
    video_max_pixels: int | None = _f(None, "Like image_max_pixels, per video frame. None: the video processor's own.")
    video_fps: float | None = _f(None, "Video frames sampled per second. None: the video processor's own (Qwen: 2).")
    video_max_frames: int | None = _f(None, "At most this many frames per video. None: the video processor's own.")
    train_language_model: bool = _f(True, "Train the language model (full, LoRA or QLoRA as `method` says).")
    train_projector: bool = _f(
        False, "Also train the projector (Qwen's merger, LLaVA's multi_modal_projector); under LoRA it trains whole."
    )
    train_vision_tower: bool = _f(
        False, "Also train the vision tower (full with method: full; LoRA on its linears under LoRA/QLoRA)."
    )
    projector_learning_rate: float | None = _f(None, "Learning rate of the projector (None: learning_rate).")
    vision_tower_learning_rate: float | None = _f(None, "Learning rate of the vision tower (None: learning_rate).")
    vision_encoder: str | None = _f(
        None,
        "Compose a VLM: this SigLIP/CLIP encoder (Hub id or path) joined to model_name_or_path (a Qwen LLM) by a new "
        "MLP projector, with transformers' LLaVA-OneVision classes. tiny:llava_onevision is the test bed's tower.",
    )


# TRL keys whose default is ours rather than TRL's, and why. Everything else defaults to TRL's own value.
TRL_KEY_DEFAULTS: dict[str, Any] = {
    "dtype": "auto",  # bf16 on GPUs that support it, fp32 elsewhere (TRL's ModelConfig says float32)
    "lora_target_modules": "all-linear",  # every decoder linear (LoRA Without Regret); TRL's None is PEFT's q/v
    "assistant_only_loss": True,  # SFT trains the assistant turns only (our templates mark them)
    "use_bnb_nested_quant": True,  # QLoRA: double quantisation saves ~0.4 bits per weight
}


def our_fields() -> dict[str, Any]:
    """Name -> dataclass field of every key that is ours."""
    return {f.name: f for f in fields(RecipeArgs)}


def nested_fields(cls: type) -> dict[str, Any]:
    """Name -> field of a nested block's dataclass."""
    return {f.name: f for f in fields(cls)}

"""The TRL trainer for a recipe's task: SFT/CPT (SFTTrainer), DPO, ORPO, SimPO (CPO) and GRPO."""

from __future__ import annotations

from typing import Any

from qwen_recipes.recipe import Recipe
from qwen_recipes.recipe.trl_fields import import_config_class
from qwen_recipes.training.precision import mixed_precision

# Keys handled by us rather than passed through to TRL.
NOT_FOR_TRL = {"resume_from_checkpoint", "assistant_only_loss", "chat_template_path", "dtype"}


def training_args(recipe: Recipe) -> Any:
    """The task's TRL config (SFTConfig, DPOConfig, ...) built from the recipe, with environment-aware defaults."""
    import torch

    kwargs = {k: v for k, v in recipe.trl_kwargs().items() if k not in NOT_FOR_TRL}
    cuda = torch.cuda.is_available()
    autocast = mixed_precision(recipe, cuda, cuda and torch.cuda.is_bf16_supported())
    kwargs["bf16"], kwargs["fp16"] = autocast == "bf16", autocast == "fp16"
    if not cuda:
        kwargs.setdefault("use_cpu", True)
        if recipe.get("optim") == "adamw_torch_fused":
            kwargs["optim"] = "adamw_torch"  # the fused kernel is CUDA-only
    # Logged losses as they are: our divergence guard stops on the first NaN/inf (transformers would average it away).
    kwargs.setdefault("logging_nan_inf_filter", False)
    if recipe.task != "grpo":  # GRPO batches carry prompts, not `input_ids`: the count would warn every step
        kwargs.setdefault("include_num_input_tokens_seen", "non_padding")
    if recipe.task in ("sft", "cpt"):
        # We tokenize and mask ourselves (data.py); TRL must not swap templates or re-tokenize.
        kwargs["assistant_only_loss"] = False
        kwargs["dataset_kwargs"] = {**(kwargs.get("dataset_kwargs") or {})}
    if recipe.task in ("sft", "grpo") and vision_family(recipe) is not None:
        from qwen_recipes.training.vision_trainer import vision_training_kwargs

        kwargs = vision_training_kwargs(recipe, kwargs)
    if recipe.task == "simpo":
        kwargs.setdefault("loss_type", "simpo")
        kwargs.setdefault("cpo_alpha", 0.0)
    _hybrid_args(recipe, kwargs, cuda)
    from qwen_recipes.training.noise import trainer_kwargs

    return import_config_class(recipe.config_class)(**trainer_kwargs(recipe, kwargs))


def _hybrid_args(recipe: Recipe, kwargs: dict[str, Any], cuda: bool) -> None:
    # MoE router loss (TRL's router_aux_loss_coef) and Gated-DeltaNet packing, decided in training.hybrid.
    from qwen_recipes.recipe.trl_fields import trl_fields
    from qwen_recipes.training import hybrid, model

    coef = model.router_aux_loss_coef(recipe)
    if coef is not None and "router_aux_loss_coef" in trl_fields()[recipe.config_class]:
        kwargs["router_aux_loss_coef"] = coef
    plan = hybrid.kernel_plan(recipe, model.model_type(recipe), cuda)
    for line in plan.warnings:
        print(f"warning: {line}")
    if plan.unpack:
        print(f"packing: {plan.lines['packing']}")
        kwargs.update({k: False for k in ("packing", "padding_free") if k in trl_fields()[recipe.config_class]})


def make_trainer(
    recipe: Recipe,
    args: Any,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any = None,
    peft_config: Any = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """Build the TRL trainer for `recipe.task` around an already-loaded model, prepared data and `training_args`."""
    common = {
        "model": model,
        "args": args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "peft_config": peft_config,
        "callbacks": callbacks,
    }
    if getattr(tokenizer, "image_processor", None) is not None:  # a vision-language processor
        from qwen_recipes.training.vision_trainer import make_vision_trainer

        return make_vision_trainer(recipe, common)
    if recipe.task in ("sft", "cpt"):
        return sft_trainer_class()(**common)
    if recipe.task == "dpo":
        from trl import DPOTrainer

        return DPOTrainer(**common)
    if recipe.task == "orpo":
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer(**common)
    if recipe.task == "simpo":
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer(**common)
    if recipe.task == "grpo":
        from qwen_recipes.training.grpo import make_grpo_trainer

        return make_grpo_trainer(recipe, model, tokenizer, train_dataset, peft_config, args, eval_dataset, callbacks)
    raise ValueError(f"unknown task {recipe.task!r}")  # validated with the recipe: a bug if reached


def vision_family(recipe: Recipe) -> Any:
    """The recipe's vision-language family (training/vision.py), None for text-only models."""
    from qwen_recipes.training.vision import recipe_family

    return recipe_family(recipe)


def compact_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any, num_processes: int, aux_coef: float = 0.0
) -> tuple[Any, Any]:
    """Next-token cross-entropy with logits only at trained positions (same value as TRL's loss), and the MoE aux loss.

    The model is called as usual (so DDP/DeepSpeed/PEFT wrappers see their forward), with `logits_to_keep` set to the
    positions whose next token is trained: the LM head never projects the masked ones. With `aux_coef`, the router
    load-balancing loss is requested and `aux_coef` x it is added, as TRL adds it; it is returned for logging.
    """
    import torch
    import torch.nn.functional as F

    targets = inputs["labels"][:, 1:]
    positions = (targets != -100).any(dim=0).nonzero().squeeze(-1)
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    if aux_coef:
        kwargs["output_router_logits"] = True
    outputs = model(**kwargs, use_cache=False, logits_to_keep=positions)
    picked = targets[:, positions]
    denom = num_items_in_batch if num_items_in_batch is not None else (picked != -100).sum()
    loss = F.cross_entropy(outputs.logits.flatten(0, 1).float(), picked.flatten(), ignore_index=-100, reduction="sum")
    loss = loss / torch.as_tensor(denom, device=loss.device).clamp(min=1)
    loss = loss * num_processes if num_items_in_batch is not None else loss
    aux = getattr(outputs, "aux_loss", None) if aux_coef else None
    return (loss + aux_coef * aux if aux is not None else loss), aux


def sft_trainer_class() -> type:
    """TRL's SFTTrainer, with a compact loss on CPU.

    TRL 1.16 always computes the SFT loss through its fused LM head, which off Triton devices scores every position
    (masked ones too) plus entropy/accuracy metrics in plain torch: 5.5x slower on CPU (docs/benchmarks.md). On CPU
    we compute the same loss on the trained positions only; GPUs keep TRL's path.
    """
    from trl import SFTTrainer

    class QwenRecipesSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs or self.args.device.type != "cpu":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
            # The MoE aux loss as TRL adds it: a per-micro-batch mean, averaged over the accumulation steps.
            steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
            coef = self.router_aux_loss_coef / steps if self.aux_loss_enabled else 0.0
            loss, aux = compact_loss(model, inputs, num_items_in_batch, scale, coef)
            if aux is not None:
                self._metrics["train" if model.training else "eval"]["aux_loss"].append(aux.item())
            return loss

    return QwenRecipesSFTTrainer

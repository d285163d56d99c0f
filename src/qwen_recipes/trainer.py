"""The TRL trainer for a recipe's task: SFT/CPT (SFTTrainer), DPO, ORPO, SimPO (CPO) and GRPO."""

from __future__ import annotations

from typing import Any

from qwen_recipes.schema import import_config_class

# Keys handled by us rather than passed through to TRL.
NOT_FOR_TRL = {"resume_from_checkpoint", "assistant_only_loss", "chat_template_path", "dtype"}


def training_args(recipe: Any) -> Any:
    """The task's TRL config (SFTConfig, DPOConfig, ...) built from the recipe, with environment-aware defaults."""
    import torch

    kwargs = {k: v for k, v in recipe.trl_kwargs().items() if k not in NOT_FOR_TRL}
    cuda = torch.cuda.is_available()
    if "bf16" not in kwargs and "fp16" not in kwargs:
        kwargs["bf16"] = bool(cuda and torch.cuda.is_bf16_supported())
    if not cuda:
        kwargs.setdefault("use_cpu", True)
        if kwargs.get("optim", "adamw_torch_fused") == "adamw_torch_fused":
            kwargs["optim"] = "adamw_torch"  # the fused kernel is CUDA-only
    kwargs.setdefault("report_to", "none")
    kwargs.setdefault("include_num_input_tokens_seen", "non_padding")
    if recipe.task in ("sft", "cpt"):
        # We tokenize and mask ourselves (data.py); TRL must not swap templates or re-tokenize.
        kwargs["assistant_only_loss"] = False
        kwargs["dataset_kwargs"] = {**(kwargs.get("dataset_kwargs") or {})}
    if recipe.task == "simpo":
        kwargs.setdefault("loss_type", "simpo")
        kwargs.setdefault("cpo_alpha", 0.0)
    return import_config_class(recipe.config_class)(**kwargs)


def make_trainer(
    recipe: Any,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any = None,
    peft_config: Any = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """Build the TRL trainer for `recipe.task` around an already-loaded model and prepared data."""
    args = training_args(recipe)
    common = {
        "model": model,
        "args": args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "peft_config": peft_config,
        "callbacks": callbacks,
    }
    if recipe.task in ("sft", "cpt"):
        from trl import SFTTrainer

        return SFTTrainer(**common)
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
        from qwen_recipes.grpo import make_grpo_trainer

        trainer = make_grpo_trainer(recipe, model, tokenizer, train_dataset, peft_config, args)
        for cb in callbacks or []:
            trainer.add_callback(cb)
        return trainer
    raise ValueError(f"unknown task {recipe.task!r}")

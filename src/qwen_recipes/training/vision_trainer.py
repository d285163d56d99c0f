"""TRL trainers for vision-language recipes: SFT with our collator, GRPO with the processor, per-part learning rates."""

from __future__ import annotations

from typing import Any

from qwen_recipes.recipe import Recipe
from qwen_recipes.training.vision import optimizer_mixin, recipe_family


def vision_token_ids(processor: Any, recipe: Recipe) -> list[int]:
    """Ids of every token a vision span is made of (image/video pads, vision start/end): never trained."""
    family = recipe_family(recipe)
    return [processor.tokenizer.convert_tokens_to_ids(t) for t in family.vision.vision_token_names()]


def vision_training_kwargs(recipe: Recipe, kwargs: dict[str, Any]) -> dict[str, Any]:
    """TRL config overrides: the rows' image/video columns reach the collator; TRL prepares nothing ahead."""
    kwargs["remove_unused_columns"] = False
    if recipe.task == "sft":
        kwargs["dataset_kwargs"] = {**(kwargs.get("dataset_kwargs") or {}), "skip_prepare_dataset": True}
    return kwargs


def make_vision_trainer(recipe: Recipe, common: dict[str, Any]) -> Any:
    """The SFT or GRPO trainer of a vision-language recipe around a loaded model and its processor."""
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision_dataset import VisionCollator
    from qwen_recipes.training.model import model_type
    from qwen_recipes.training.trainer import sft_trainer_class

    processor, args = common["processing_class"], common["args"]
    if recipe.task == "grpo":
        from trl import GRPOTrainer

        from qwen_recipes.training.grpo import make_grpo_trainer

        cls = type("VisionGRPOTrainer", (optimizer_mixin(), GRPOTrainer), {})
        trainer = make_grpo_trainer(
            recipe, common["model"], processor, common["train_dataset"], common["peft_config"], args,
            common["eval_dataset"], common["callbacks"], trainer_class=cls,
        )  # fmt: skip
    else:
        template = resolve_training_template(processor, model_type(recipe), recipe.get("chat_template_path"))
        collator = VisionCollator(
            processor,
            template,
            vision_token_ids(processor, recipe),
            assistant_only_loss=recipe.get("assistant_only_loss"),
            pad_to_multiple_of=args.pad_to_multiple_of,
        )
        cls = type("VisionSFTTrainer", (optimizer_mixin(), sft_trainer_class()), {})
        trainer = cls(**common, data_collator=collator)
    trainer.vision_recipe = recipe
    return trainer

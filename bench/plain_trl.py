"""Plain TRL baseline for the throughput benchmark: `SFTTrainer` with its defaults (no packing, padded batches).

    python -m bench.plain_trl --model DIR --dataset DIR --recipe RECIPE.yaml --out result.json

Same model, same LoRA adapter (from the recipe), same pre-tokenized rows and masks as our run; everything else is
TRL's default, except what a CPU forces (fp32, no fused optimizer), as our engine does too.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Train one epoch with plain TRL and write real tokens, wall time and steps as JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.plain_trl", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="local model folder")
    p.add_argument("--dataset", required=True, help="datasets.save_to_disk folder with input_ids + assistant_masks")
    p.add_argument("--recipe", required=True, help="our recipe, for the LoRA config only")
    p.add_argument("--out", required=True, help="where to write the JSON result")
    p.add_argument("--output_dir", default=None)
    args = p.parse_args(argv)

    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    from qwen_recipes.cost.meter import CostMeter
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.training.model import peft_config

    set_seed(42)
    recipe = load_recipe(args.recipe)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = SFTConfig(
        output_dir=args.output_dir or "/tmp/qwen-bench-plain-trl",
        num_train_epochs=1,
        use_cpu=not torch.cuda.is_available(),
        bf16=bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        optim="adamw_torch",
        report_to="none",
        save_strategy="no",
        include_num_input_tokens_seen="non_padding",
    )
    meter = CostMeter(recipe)  # the same meter our runs use
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=load_from_disk(args.dataset),
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
        callbacks=[meter],
    )
    trainer.train()
    result = {
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "wall_seconds": meter.wall_seconds,
        "steps": trainer.state.global_step,
        "packing": config.packing,
        "padding_free": config.padding_free,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "max_length": config.max_length,
        "gradient_checkpointing": config.gradient_checkpointing,
    }
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())

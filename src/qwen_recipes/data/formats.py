"""Row formats: turn the public dataset shapes into the canonical rows the engine trains on.

Canonical rows are `{"messages": [...]}` (SFT), `{"text": str}` (CPT), `{"prompt", "chosen", "rejected"}`
(preference) or `{"prompt": [...], ...}` (GRPO). Every converter returns the row or raises `SkipRow` with a reason;
reasons are counted, never silently dropped.
"""

from __future__ import annotations

import importlib
import math
import re
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
# ShareGPT speaker names -> roles.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
SHAREGPT_ROLES |= {"tool": "tool", "function_call": "assistant", "observation": "tool", "model": "assistant"}
# Names datasets use for an assistant turn's reasoning; `thinking` is the one that silently broke templates
# elsewhere (transformers#44301), so all of them map to `reasoning_content` explicitly.
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking", "think", "thoughts")

# Registered `preprocess:` converters: name -> "module:function". Each takes a raw row (+ preprocess_args).
PREPROCESSORS: dict[str, str] = {
    "s1k": "qwen_recipes.data.prepare.s1k:s1k_row",
    "s1k_1.1": "qwen_recipes.data.prepare.s1k:s1k_1_1_row",
    "gsm8k": "qwen_recipes.data.prepare.grpo:gsm8k_row",
    "countdown": "qwen_recipes.data.prepare.grpo:countdown_row",
    "math": "qwen_recipes.data.prepare.grpo:math_row",
    "pixmo_cap": "qwen_recipes.data.prepare.pixmo:pixmo_cap_row",
    "pixmo_points": "qwen_recipes.data.prepare.pixmo:pixmo_points_row",
}


# Text fields that held a number or a boolean (CSV/Parquet answers like 42) are trained as its string form; the
# reader sets a Counter here to count them (`DataReport.converted`), so the conversion is visible, never silent.
CONVERSIONS: ContextVar[Counter | None] = ContextVar("conversions", default=None)


class SkipRow(Exception):
    """A row that cannot be used; `reason` is a short stable label counted in the run report."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def get_preprocessor(name: str) -> Callable[..., dict[str, Any]]:
    """The registered row converter `name`."""
    if name not in PREPROCESSORS:
        raise KeyError(f"unknown preprocess {name!r}; known: {', '.join(sorted(PREPROCESSORS))}")  # validated earlier
    module, func = PREPROCESSORS[name].split(":")
    return getattr(importlib.import_module(module), func)


def detect_format(columns: set[str], task: str) -> str:
    """Guess a row format from column names (after the recipe's column mapping)."""
    if {"chosen", "rejected"} <= columns:
        return "preference"
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        return "sharegpt"
    if "instruction" in columns and "output" in columns:
        return "alpaca"
    if "prompt" in columns and "completion" in columns:
        return "prompt_completion"
    if task == "grpo" and "prompt" in columns:
        return "prompt"
    if "text" in columns:
        return "text"
    raise SkipRow(
        "unknown format",
        f"columns {sorted(columns)} match no known format; set format: and columns: on this dataset",
    )


MEDIA_COLUMNS = ("images", "videos", "image", "video")
MEDIA_PARTS = ("image", "video", "image_url", "video_url")
MESSAGE_COLUMNS = ("messages", "conversations", "prompt", "completion", "chosen", "rejected")


def media_in_row(row: dict[str, Any]) -> str | None:
    """What makes a row an image/video row (`images` column, or an image part of a message), else None."""
    for key in MEDIA_COLUMNS:
        value = row.get(key)
        if value is None or (isinstance(value, (str, list, tuple)) and not value):
            continue
        if not (isinstance(value, float) and math.isnan(value)):
            return f"an {key!r} column"
    for key in MESSAGE_COLUMNS:
        for i, m in enumerate(row.get(key) if isinstance(row.get(key), list) else []):
            parts = m.get("content") if isinstance(m, dict) else None
            for part in parts if isinstance(parts, list) else []:
                if isinstance(part, dict) and (
                    part.get("type") in MEDIA_PARTS or part.get("image") or part.get("video")
                ):
                    video = "video" in str(part.get("type")) or part.get("video") is not None
                    return f"{'a video' if video else 'an image'} part in {key}[{i}].content"
    return None


def _text(value: Any, what: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise SkipRow("missing field", what)
    if isinstance(value, (bool, int, float)):
        counter = CONVERSIONS.get()
        if counter is not None:
            field = re.sub(r"\[\d+\]", "[]", what)
            counter[f"{field}: {type(value).__name__} -> text"] += 1
        return str(value)
    if not isinstance(value, str):
        raise SkipRow("wrong type", f"{what} is {type(value).__name__}, expected a string")
    if "\ufffd" in value:
        raise SkipRow("non-UTF-8", f"{what} contains undecodable bytes (U+FFFD)")
    return value


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isnan(value))


def normalize_messages(messages: Any, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """Validate an OpenAI-style message list; reasoning keys map to `reasoning_content`."""
    if not isinstance(messages, list) or not messages:
        raise SkipRow("missing field", "messages is empty or not a list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise SkipRow("wrong type", f"messages[{i}] is not a mapping")
        role = m.get("role")
        if role not in ROLES:
            raise SkipRow("unknown role", f"messages[{i}].role={role!r}; expected one of {', '.join(ROLES)}")
        msg: dict[str, Any] = {"role": role, "content": _text(m.get("content"), f"messages[{i}].content")}
        for key in REASONING_KEYS:
            if m.get(key) is not None:
                msg["reasoning_content"] = _text(m[key], f"messages[{i}].{key}")
                break
        if m.get("tool_calls"):
            msg["tool_calls"] = m["tool_calls"]
        empty = (
            not msg["content"].strip() and not msg.get("tool_calls") and not msg.get("reasoning_content", "").strip()
        )
        if role in ("user", "assistant") and empty:
            raise SkipRow("empty content", f"messages[{i}] ({role}) is empty")
        out.append(msg)
    if not any(m["role"] == "assistant" for m in out):
        raise SkipRow("no assistant turn", "the conversation has no assistant message to train on")
    if system_prompt and out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": system_prompt})
    return out


def to_canonical(row: dict[str, Any], fmt: str, system_prompt: str | None = None) -> dict[str, Any]:
    """Convert one row (columns already mapped to our names) to its canonical form."""
    if fmt == "messages":
        return {"messages": normalize_messages(row.get("messages"), system_prompt)}
    if fmt == "sharegpt":
        conv = row.get("conversations")
        if not isinstance(conv, list):
            raise SkipRow("missing field", "conversations is missing or not a list")
        msgs = []
        for i, turn in enumerate(conv):
            speaker = (turn or {}).get("from")
            if speaker not in SHAREGPT_ROLES:
                raise SkipRow("unknown role", f"conversations[{i}].from={speaker!r}")
            msgs.append({"role": SHAREGPT_ROLES[speaker], "content": turn.get("value")})
        if row.get("system") and msgs and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": normalize_messages(msgs, system_prompt)}
    if fmt == "alpaca":
        instruction = _text(row.get("instruction"), "instruction")
        extra = _text(row["input"], "input") if row.get("input") is not None else ""
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        output = _text(row["output"], "output") if _is_scalar(row.get("output")) else row.get("output")
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        if row.get("system"):
            msgs.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": normalize_messages(msgs, system_prompt)}
    if fmt == "prompt_completion":
        prompt, completion = row.get("prompt"), row.get("completion")
        prompt = _text(prompt, "prompt") if _is_scalar(prompt) else prompt
        completion = _text(completion, "completion") if _is_scalar(completion) else completion
        if isinstance(prompt, str):
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        else:
            msgs = list(prompt or []) + list(completion or [])
        return {"messages": normalize_messages(msgs, system_prompt)}
    if fmt == "text":
        text = _text(row.get("text"), "text")
        if not text.strip():
            raise SkipRow("empty content", "text is empty")
        return {"text": text}
    if fmt == "preference":
        return _preference(row, system_prompt)
    if fmt == "prompt":
        return {**row, "prompt": _prompt(row, system_prompt)}
    raise ValueError(f"unknown format {fmt!r}")


def _prompt(row: dict[str, Any], system_prompt: str | None) -> list[dict[str, Any]]:
    """A conversational prompt (a string becomes one user turn), with the source's system prompt if it has none."""
    prompt = row.get("prompt")
    if isinstance(prompt, str) or _is_scalar(prompt):
        prompt = [{"role": "user", "content": _text(prompt, "prompt")}]
    if not isinstance(prompt, list) or not prompt:
        raise SkipRow("missing field", "prompt is missing")
    if system_prompt and prompt[0].get("role") != "system":
        prompt = [{"role": "system", "content": system_prompt}, *prompt]
    return prompt


def _preference(row: dict[str, Any], system_prompt: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": _prompt(row, system_prompt)}
    for key in ("chosen", "rejected"):
        value = row.get(key)
        if isinstance(value, str) or _is_scalar(value):
            value = [{"role": "assistant", "content": _text(value, key)}]
        if not isinstance(value, list) or not value or not str(value[-1].get("content") or "").strip():
            raise SkipRow("missing field", f"{key} is missing or empty")
        out[key] = value
    return out

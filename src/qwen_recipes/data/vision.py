"""Vision-language rows: content parts and LLaVA-style `<image>` placeholders → canonical rows with image paths.

Accepted shapes (after the recipe's `columns:` mapping):
- `messages` whose content is a string or a list of parts: `{"type": "image", "image": PATH_OR_URL}`,
  `{"type": "video", "video": PATH}`, `{"type": "text", "text": ...}`; a bare `{"type": "image"}` takes the next
  entry of the row's `images` column;
- LLaVA / ShareGPT (LLaMA-Factory's multimodal format): string contents with `<image>` / `<video>` placeholders and
  `images: [...]` / `videos: [...]` columns, through the `messages`, `sharegpt`, `alpaca` or `prompt_completion`
  formats; GRPO `prompt` rows the same way.

`<image>` and `<video>` in text are placeholders everywhere (as in LLaMA-Factory). A conversation with no placeholder
at all gets its images before the first user text (TRL's convention); otherwise placeholders and images must pair up.
Local paths are relative to the data file. Images stay paths: only their headers are read here (size, for the token
count); pixels are decoded batch by batch in the collator. URLs and in-memory images are saved once to the cache.
Every bad row is a `SkipRow` with a stable reason, counted with its file:line like any other bad row.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_recipes.data.formats import SkipRow, to_canonical
from qwen_recipes.recipe.schema import DatasetSpec

PLACEHOLDERS = {"image": "<image>", "video": "<video>"}
MEDIA_COLUMNS = {"image": ("images", "image"), "video": ("videos", "video")}
GOLD_COLUMNS = ("answer", "solution", "options", "points", "count")
_SPLIT = re.compile(r"(<image>|<video>)")
# Parts with their own media are flattened to a private-use marker around their index (never in real text).
_MARK, _END = "\ue000", "\ue001"
_ANY = re.compile(r"<image>|<video>|\ue000\d+\ue001")
# EXIF orientations that rotate by 90 degrees: the decoded image (exif_transpose) has width and height swapped.
_ROTATED = {5, 6, 7, 8}


def _media_column(row: dict[str, Any], kind: str) -> list[Any]:
    for key in MEDIA_COLUMNS[kind]:
        value = row.get(key)
        if value is not None:
            return list(value) if isinstance(value, (list, tuple)) else [value]
    return []


def _part_ref(part: dict[str, Any], kind: str) -> Any:
    """The inline media of a content part (`image`, `image_url: {url}`, `url`, `path`), or None for a placeholder."""
    value = part.get(kind)
    if value is None and kind == "image" and part.get("image_url") is not None:
        value = part["image_url"]
        value = value.get("url") if isinstance(value, dict) else value
    return value if value is not None else part.get("url") or part.get("path")


def _flatten(content: Any, inline: list[tuple[str, Any]], where: str) -> Any:
    """A content-part list as one string: parts with their own media become a private marker (their index in
    `inline`), bare `{"type": "image"}` parts the `<image>` placeholder, text parts their text."""
    if not isinstance(content, list):
        return content
    text = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            text.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image", "image_url", "video"):
            kind = "video" if kind == "video" else "image"
            ref = _part_ref(part, kind)
            if ref is None:
                text.append(PLACEHOLDERS[kind])
            else:
                text.append(f"{_MARK}{len(inline)}{_END}")
                inline.append((kind, ref))
        elif kind == "text" or (isinstance(part, dict) and "text" in part):
            text.append(str(part.get("text") or ""))
        else:
            raise SkipRow("unknown content part", f"{where}[{i}] has type {kind!r}; expected image, video or text")
    return "".join(text)


def _flat_messages(messages: Any, inline: list[tuple[str, Any]], where: str) -> Any:
    if not isinstance(messages, list):
        return messages
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            m = {**m, "content": _flatten(m["content"], inline, f"{where}[{i}].content")}
        out.append(m)
    return out


def _pair_media(messages: list[dict[str, Any]], inline: list[tuple[str, Any]], row: dict[str, Any]) -> dict:
    """Media refs per kind in text order; inline parts keep theirs, each placeholder takes the column's next one.

    Rewrites the messages' markers to placeholders. A kind with no placeholder at all and a non-empty column gets
    its media before the first user text (TRL's convention); any other count mismatch is a bad row.
    """
    found = [(m, t) for m in messages for t in _ANY.findall(m["content"])]
    out: dict[str, list[Any]] = {}
    for kind, token in PLACEHOLDERS.items():
        column = _media_column(row, kind)
        bare = sum(t == token for _, t in found)
        marked = [t for _, t in found if t.startswith(_MARK) and inline[int(t[1:-1])][0] == kind]
        if not bare and not marked and column:
            first_user = next((m for m in messages if m["role"] == "user"), None)
            if first_user is None:
                raise SkipRow(f"{kind} placeholders mismatch", f"{len(column)} {kind}(s) but no user turn to hold them")
            first_user["content"] = token * len(column) + first_user["content"]
            found = [(m, t) for m in messages for t in _ANY.findall(m["content"])]
        elif bare != len(column):
            raise SkipRow(
                f"{kind} placeholders mismatch",
                f"{bare} {token} placeholder(s) but {len(column)} {kind}(s) in the '{MEDIA_COLUMNS[kind][0]}' column; "
                f"each placeholder takes the next {kind}, in order",
            )
        column_iter = iter(column)
        out[kind] = [
            next(column_iter) if t == token else inline[int(t[1:-1])][1]
            for _, t in found
            if t == token or (t.startswith(_MARK) and inline[int(t[1:-1])][0] == kind)
        ]
    for m in messages:
        m["content"] = _ANY.sub(lambda x: _placeholder(x.group(0), inline), m["content"])
    return out


def _placeholder(token: str, inline: list[tuple[str, Any]]) -> str:
    return PLACEHOLDERS[inline[int(token[1:-1])][0]] if token.startswith(_MARK) else token


def _parts(text: str) -> list[dict[str, Any]]:
    """A string with placeholders as content parts (`{"type", "text"}` only, so every part has the same keys)."""
    parts = []
    for piece in _SPLIT.split(text):
        if piece in ("<image>", "<video>"):
            parts.append({"type": piece[1:-1], "text": None})
        elif piece:
            parts.append({"type": "text", "text": piece})
    return parts


def _fold_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    # The Qwen VL templates drop `reasoning_content`; keep it as the text `<think>…</think>` block it stands for.
    reasoning = message.pop("reasoning_content", None)
    if reasoning and message["role"] == "assistant":
        message["content"] = f"<think>\n{reasoning.strip()}\n</think>\n\n{message['content'].lstrip()}"
    return message


def vision_canonical(row: dict[str, Any], fmt: str, spec: DatasetSpec, where: str, cache: Path) -> dict[str, Any]:
    """One row as `{"messages" | "prompt": parts, "images": [path], "videos": [path], ...}`, media checked."""
    inline: list[tuple[str, Any]] = []
    flat = dict(row)
    for key in ("messages", "prompt", "completion"):
        if key in row:
            flat[key] = _flat_messages(row[key], inline, key)
    for media_key in (*MEDIA_COLUMNS["image"], *MEDIA_COLUMNS["video"]):
        flat.pop(media_key, None)
    canonical = to_canonical(flat, fmt, spec.system_prompt)
    if "messages" not in canonical and "prompt" not in canonical:
        raise SkipRow("not a chat row", f"format {fmt!r} gives no messages; vision rows need a conversation")
    key = "messages" if "messages" in canonical else "prompt"
    messages = [_fold_reasoning(dict(m)) for m in canonical[key]]
    for m in messages:
        if not isinstance(m.get("content"), str):
            raise SkipRow("wrong type", f"a {m.get('role')} message has non-text content {m.get('content')!r}")
    refs = _pair_media(messages, inline, row)
    base = Path(where.rsplit(":", 1)[0]).parent if ":" in where else Path(spec.path).parent
    images = [resolve_media(ref, base, cache, "image") for ref in refs["image"]]
    videos = [resolve_media(ref, base, cache, "video") for ref in refs["video"]]
    out = {k: v for k, v in canonical.items() if k != key}
    for gold in GOLD_COLUMNS:  # what evaluation and rewards score against travels with the row
        if gold in row and gold not in out:
            out[gold] = row[gold]
    out[key] = [{**m, "content": _parts(m["content"])} for m in messages]
    out["images"] = [path for path, _ in images]
    out["videos"] = [path for path, _ in videos]
    out["_image_sizes"] = [size for _, size in images]
    out["_where"] = where
    return out


def media_converter() -> Callable[[dict[str, Any], str, DatasetSpec, str], dict[str, Any]]:
    """The mixture reader's `canonical=` hook for vision rows: media resolved into the qwen-recipes cache."""
    from qwen_recipes.data.pipeline import cache_home

    cache = cache_home() / "media"
    return lambda row, fmt, spec, where: vision_canonical(row, fmt, spec, where, cache)


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image as the processor will see it (EXIF rotation applied), from its header only."""
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(0x0112)
    return (width, height) if orientation in _ROTATED else (height, width)


def _cached_bytes(data: bytes, cache: Path, suffix: str) -> str:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not path.exists():
        tmp = path.with_suffix(f".{id(data)}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


def resolve_media(ref: Any, base: Path, cache: Path, kind: str) -> tuple[str, tuple[int, int] | None]:
    """(local path, (height, width) for images) of a path, URL, PIL image or `{"bytes"/"path"}` dict; else SkipRow."""
    if ref is None or ref == "":
        raise SkipRow(f"missing {kind}", f"a {kind} part has no path")
    if isinstance(ref, dict):
        ref = ref.get("bytes") or ref.get("path")
    if hasattr(ref, "save") and kind == "image":  # an in-memory PIL image (a Hub dataset's Image column)
        buf = io.BytesIO()
        ref.save(buf, format="PNG")
        ref = buf.getvalue()
    if isinstance(ref, bytes):
        path = _cached_bytes(ref, cache, ".png" if kind == "image" else ".bin")
    elif isinstance(ref, str) and ref.startswith(("http://", "https://")):
        path = _download(ref, cache, kind)
    elif isinstance(ref, str):
        local = Path(ref) if Path(ref).is_absolute() else base / ref
        if not local.is_file():
            raise SkipRow(f"missing {kind}", f"{ref!r} (looked for {local}; paths are relative to the data file)")
        path = str(local.resolve())
    else:
        raise SkipRow("wrong type", f"a {kind} is {type(ref).__name__}; expected a path, URL or image")
    if kind != "image":
        return path, None
    try:
        return path, image_size(path)
    except Exception as e:  # PIL raises many types for a truncated or non-image file
        raise SkipRow("unreadable image", f"{ref if isinstance(ref, str) else path}: {type(e).__name__}: {e}") from None


def _download(url: str, cache: Path, kind: str) -> str:
    import urllib.request

    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    hits = list(cache.glob(f"url-{key}*")) if cache.is_dir() else []
    if hits:
        return str(hits[0])
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
    except Exception as e:  # offline, 404, timeout: the row is skipped and counted with the reason
        raise SkipRow(f"unreadable {kind}", f"{url}: {type(e).__name__}: {e}") from None
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"url-{key}{Path(url.split('?')[0]).suffix[:8]}"
    path.write_bytes(data)
    return str(path)

"""Read a recipe file as YAML within bounds: size, encoding, nesting, alias expansion, keys.

A recipe is a few KB of hand-written YAML. Anything far outside that (a data file passed by mistake, a
generated file, a hostile one) is refused with a named error before it can cost minutes or gigabytes: the file
size is capped, nesting depth is counted on the event stream (PyYAML composes recursively), and aliases are
sized on the node graph (shared nodes are counted once per reference, never expanded). Keys must be strings and
appear once per mapping. Every message is bounded: no value is ever printed whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024  # the largest shipped recipe is ~3 KB
MAX_DEPTH = 64
MAX_NODES = 100_000  # after alias expansion
# libyaml when PyYAML has it (about 20x faster on a large file); same nodes, marks and errors otherwise.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters: messages name a value, they never print a huge one."""
    text = repr(value) if not isinstance(value, (dict, list)) or _small(value) else f"<a large {type(value).__name__}>"
    if len(text) <= limit:
        return text
    return text[: limit - 4] + "...'" if text[0] in "'\"" else text[: limit - 3] + "..."


def _small(value: Any, budget: int = 20) -> bool:
    # Whether a container is small enough to repr cheaply (aliases can make a tiny file a huge object graph).
    stack, seen = [value], 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def decode(raw: bytes, path: Path) -> str:
    """The file's text; UTF-16/32, NUL bytes and invalid UTF-8 are refused with the position and the fix."""
    for bom, name in BOMS.items():
        if raw.startswith(bom):
            return _refuse(path, f"the file is {name}-encoded; save it as UTF-8")
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        _refuse(path, f"line {line} holds a NUL byte (is the file UTF-16 without a BOM, or binary?); save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return _refuse(path, f"line {line}: byte 0x{raw[e.start]:02x} is not valid UTF-8; save the file as UTF-8")


def _refuse(path: Path, message: str) -> Any:
    from qwen_recipes.recipe.core import RecipeError

    raise RecipeError([f"{path}: {message}"])


def check_events(text: str, path: Path) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing (the parser is iterative, the composer recursive)."""
    depth = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                _refuse(path, f"line {line}: nesting deeper than {MAX_DEPTH} levels; a recipe is a flat mapping")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def check_nodes(root: yaml.Node, path: Path) -> list[str]:
    """Problems of the node graph: expanded size over MAX_NODES, recursive aliases, non-string or repeated keys."""
    problems: list[str] = []
    sizes: dict[int, int] = {}
    checked: set[int] = set()
    # Iterative post-order walk; each distinct node is visited once, so a billion-laughs file costs its own size.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                line = node.start_mark.line + 1
                return [
                    f"{path}:{line}: YAML aliases expand this value to more than {MAX_NODES:,} nodes "
                    "(an alias bomb?); write the values out or use base: for shared settings"
                ]
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return [f"{path}:{node.start_mark.line + 1}: a YAML alias refers to itself (recursive value)"]
        open_nodes.add(key)
        if isinstance(node, yaml.ScalarNode) and "\0" in node.value:
            problems.append(f"{path}:{node.start_mark.line + 1}: a value holds a NUL byte; remove it")
        if isinstance(node, yaml.MappingNode) and key not in checked:
            checked.add(key)
            problems += _key_problems(node, path)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return problems


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _key_problems(node: yaml.MappingNode, path: Path) -> list[str]:
    problems, first_line = [], {}
    for k, _ in node.value:
        line = k.start_mark.line + 1
        if isinstance(k, yaml.ScalarNode) and k.tag == MERGE_TAG:
            continue
        if not isinstance(k, yaml.ScalarNode) or k.tag != STR_TAG:
            shown = short(k.value) if isinstance(k, yaml.ScalarNode) else f"a {type(k).__name__[:-4].lower()}"
            kind = k.tag.rsplit(":", 1)[-1] if isinstance(k, yaml.ScalarNode) else "non-scalar"
            problems.append(
                f"{path}:{line}: key {shown} is read by YAML as {kind}, not a string; keys are names "
                "(quote it if you meant the text, e.g. 'yes':)"
            )
            continue
        if k.value in first_line:
            problems.append(
                f"{path}:{line}: key {short(k.value)} appears twice in one mapping (lines {first_line[k.value]} "
                f"and {line}); YAML would keep the last one silently: remove one"
            )
        else:
            first_line[k.value] = line
    return problems


def load(path: Path) -> tuple[Any, yaml.Node | None]:
    """The YAML document of `path` (constructed with the safe loader) and its root node, within the bounds."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        _refuse(
            path,
            f"the file is {size:,} bytes; a recipe is at most {MAX_BYTES:,} bytes (data belongs in a file named "
            "under datasets:, not in the recipe)",
        )
    text = decode(path.read_bytes(), path)
    check_events(text, path)
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if problems := check_nodes(node, path):
            from qwen_recipes.recipe.core import RecipeError

            raise RecipeError(problems)
        return loader.construct_document(node), node
    finally:
        loader.dispose()

"""The time model against published measurements: every point predicted, its residual, and the fit of the constants.

Points live in `calibration.json` (each with its source). `residuals()` predicts every point with the shipped
constants; `fit()` re-derives the constants in four stages (Ampere single-GPU points: utilisation, fixed time and
4-bit dequantisation; Hopper points: the generation factor; s1: the inter-node bandwidth; ZeRO-3-offload runs:
the effective host bandwidth), minimising the squared
log ratio predicted/published. `markdown()` is the table in docs/costs.md (a test keeps them equal).
"""

from __future__ import annotations

import copy
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from qwen_recipes.cost import timing
from qwen_recipes.cost.hardware import gpu as gpu_type
from qwen_recipes.cost.models import Arch, builtin

STAGES = ("fit-ampere", "fit-hopper", "fit-network", "fit-offload")
ROOT = Path(__file__).resolve().parents[3]  # the repository: reproduction recipes are points too


@cache
def _data() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "calibration.json").read_text())


def _arch(p: dict[str, Any]) -> Arch:
    if "hub" in p:
        return builtin()[p["hub"]]
    s = _data()["shapes"][p["shape"]]
    return Arch(
        model_type="qwen2",  # the decoder layout of Qwen2/Llama: same linears, LoRA targets all of them
        hidden=s["hidden"],
        intermediate=s["intermediate"],
        layers=s["layers"],
        heads=s["heads"],
        kv_heads=s["kv_heads"],
        head_dim=s["hidden"] // s["heads"],
        vocab=s["vocab"],
        tie_word_embeddings=s["tie"],
        qkv_bias=s["qkv_bias"],
    )


def points() -> list[dict[str, Any]]:
    """Every calibration point, series expanded (one per sequence length); recipe points need the repository."""
    out = []
    for p in _data()["points"]:
        if "recipe" in p:
            if (ROOT / p["recipe"]).is_file():
                out.append(dict(p))
            continue
        for i, seq in enumerate(p.get("series") or [p.get("seq")]):
            q = {k: v for k, v in p.items() if k not in ("series", "seconds_per_step", "tokens_per_second_per_gpu")}
            q["id"] = f"{p['id']}@{seq}" if "series" in p else p["id"]
            q["seq"] = seq
            for key in ("seconds_per_step", "tokens_per_second_per_gpu"):
                if key in p:
                    q[key] = p[key][i] if "series" in p else p[key]
            out.append(q)
    return out


def _recipe_workload(p: dict[str, Any]) -> tuple[Arch, timing.Work, Any, float, str]:
    from qwen_recipes.cost.estimate import dataset_tokens, plan
    from qwen_recipes.cost.hardware import hardware_from_recipe
    from qwen_recipes.cost.models import recipe_arch
    from qwen_recipes.recipe import load_recipe

    recipe = load_recipe(str(ROOT / p["recipe"]))
    rep = recipe.reported_block()
    gpus, g = hardware_from_recipe(rep.hardware)
    arch = recipe_arch(recipe)[0]
    tok = dataset_tokens(recipe, count=False)
    work = plan(recipe, arch, gpus, g, tok).work
    what = f"{recipe.get('model_name_or_path')} {recipe.method}, {gpus}x{g.name}, {tok.kind} tokens"
    return arch, work, g, rep.wall_time_minutes * 60, what


def workload(p: dict[str, Any]) -> tuple[Arch, timing.Work, Any, float]:
    """(architecture, work, GPU, published seconds) of one point."""
    if "recipe" in p:
        return _recipe_workload(p)[:4]
    arch, g = _arch(p), gpu_type(p["gpu"])
    if "domains" in p:  # an end-to-end run without packing: rows attend over their own length
        lengths = [(n, total / n) for n, total in p["domains"]]
        mean = p["tokens"] / p["epochs"] / p["rows"]
        attn = sum(n * m * m for n, m in lengths) / sum(n * m for n, m in lengths)
        micro_tokens, tokens, published = mean * p["micro_batch"], p["tokens"], p["run_minutes"] * 60
    else:
        micro_tokens = p["micro_batch"] * p["seq"]
        attn = p["seq"]
        tokens = micro_tokens * p["gpus"] * p["accumulation"]
        tps = p.get("tokens_per_second_per_gpu")
        published = p["seconds_per_step"] if tps is None else tokens / p["gpus"] / tps
    w = timing.Work(
        method=p["method"],
        tokens=int(tokens),
        micro_tokens=micro_tokens,
        attn_len=attn,
        gpus=p["gpus"],
        lora_r=p.get("lora_r", 16),
        gradient_checkpointing=p["checkpointing"],
        attn_kernel=p["attn"],
        dequant=p.get("dequant", "bnb"),
        sharded_weights=bool(p.get("sharded")),
        weight_bytes=p.get("weight_bytes", 2),
    )
    return arch, w, g, float(published)


@cache
def _workloads() -> tuple[tuple[dict[str, Any], Arch, timing.Work, Any, float, str | None], ...]:
    # Points are fixed data: build their workloads once (recipe points load a recipe each).
    out = []
    for p in points():
        if "recipe" in p:
            arch, w, g, published, what = _recipe_workload(p)
        else:
            (arch, w, g, published), what = workload(p), None
        out.append((p, arch, w, g, published, what))
    return tuple(out)


def residuals(consts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each point: published and predicted seconds, the ratio predicted/published, and the implied utilisation."""
    rows = []
    for p, arch, w, g, published, what in _workloads():
        t = timing.predict(arch, w, g, consts)
        rows.append(
            {
                "id": p["id"],
                "role": p["role"],
                "generation": g.generation,
                "kind": "run" if ("recipe" in p or "run_minutes" in p) else "throughput",
                "offload": w.offload_params,
                "what": what
                or f"{p.get('hub') or p.get('shape')} {p['method']}, {p['gpus']}x{g.name}, seq {p['seq'] or 'rows'}",
                "published_s": published,
                "predicted_s": t.seconds,
                "ratio": t.seconds / published,
                "utilisation": t.utilisation * t.seconds / published,  # executed FLOPs / peak at the published time
                "source": p["source"],
            }
        )
    return rows


def _loss(consts: dict[str, Any], roles: tuple[str, ...]) -> float:
    return sum(math.log(r["ratio"]) ** 2 for r in residuals(consts) if r["role"] in roles)


def _set(consts: dict[str, Any], path: tuple[str, ...], value: float) -> None:
    target = consts
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _get(consts: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = consts
    for key in path:
        value = value[key]
    return float(value)


def _descend(consts: dict[str, Any], params: list[tuple[str, ...]], roles: tuple[str, ...], sweeps: int = 6) -> None:
    # Coordinate descent in log space: a few multiplicative steps per parameter, shrinking each sweep.
    for sweep in range(sweeps):
        step = 1.25 ** (0.5**sweep)
        for path in params:
            best = _loss(consts, roles)
            for direction in (step, 1 / step):
                while True:
                    old = _get(consts, path)
                    _set(consts, path, old * direction)
                    loss = _loss(consts, roles)
                    if loss < best - 1e-12:
                        best = loss
                    else:
                        _set(consts, path, old)
                        break


def fit() -> dict[str, Any]:
    """The constants that best explain the fit points, stage by stage (Ampere, then Hopper, then inter-node)."""
    consts = copy.deepcopy(timing.constants())
    ampere = [("U_GEMM",), ("U_ATTN",), ("T_MICRO",), ("C_DEQUANT", "bnb"), ("C_DEQUANT", "gptq")]
    _descend(consts, ampere, ("fit-ampere",))
    _descend(consts, [("GENERATION", "hopper")], ("fit-hopper",))
    _descend(consts, [("NET_GBS",)], ("fit-network",))
    _descend(consts, [("HOST_GBS",)], ("fit-offload",))
    return consts


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 120 else f"{s / 60:.1f} min"


def markdown() -> str:
    """The calibration table of docs/costs.md: every point, published vs predicted, residual."""
    lines = [
        "| point | role | set-up | published | predicted | predicted / published | utilisation at the published time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in residuals():
        lines.append(
            f"| `{r['id']}` | {r['role']} | {r['what']} | {_seconds(r['published_s'])} | {_seconds(r['predicted_s'])} "
            f"| {r['ratio']:.2f} | {r['utilisation']:.0%} |"
        )
    return "\n".join(lines)

"""`qwen-recipes costs`: every reproduction recipe's published run beside our estimate (with its band) and, once a run
report exists, what was measured, with the ratio measured / estimated.

The estimate is of the recipe on the reported hardware (a reproduction recipe states the published set-up).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwen_recipes.cost.estimate import dataset_tokens, estimate_one, requested_hardware
from qwen_recipes.cost.hardware import hardware_from_recipe
from qwen_recipes.cost.models import recipe_arch
from qwen_recipes.recipe import Recipe

MARK_START, MARK_END = "<!-- costs:start -->", "<!-- costs:end -->"


def money(x: float | None) -> str:
    """'$1,234', '$12.34', '$30' (a whole number as published) or '—'."""
    if x is None:
        return "—"
    return f"${x:,.0f}" if x >= 100 or (x >= 10 and x == round(x)) else f"${x:,.2f}"


def duration(h: float | None) -> str:
    """Hours as '12.3 s', '26 min' or '19.0 h' ('—' when unknown)."""
    if h is None:
        return "—"
    if h * 60 < 1:
        return f"{h * 3600:.1f} s"
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h" if h < 100 else f"{h:,.0f} h"


def band_text(mid: float | None, low: float | None, high: float | None, fmt: Any) -> str:
    """'24 min (20 min–2.8 h)'."""
    return "—" if mid is None else f"{fmt(mid)} ({fmt(low)}–{fmt(high)})"


def tokens_text(n: int | None) -> str:
    """'4.7M', '231k'."""
    if n is None:
        return "unknown"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def reproduction_recipes(root: Path) -> list[Path]:
    """Every recipe under `root` with a `reported:` block (bases excluded), sorted."""
    import yaml

    out = []
    for path in sorted(root.glob("**/*.yaml")):
        if "_base" in path.parts:
            continue
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except Exception:  # a broken YAML is reported by the recipe loader, not here
            continue
        if isinstance(raw, dict) and raw.get("reported"):
            out.append(path)
    return out


def measured_cost(recipe: Recipe) -> dict[str, Any] | None:
    """The `cost` block of the recipe's run report, when a run has written one."""
    path = Path(recipe.get("output_dir")) / "run_report.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("cost")


def _reported_time(rep: Any) -> tuple[float | None, str]:
    if rep.wall_time_minutes:
        return rep.wall_time_minutes / 60, duration(rep.wall_time_minutes / 60)
    if rep.gpu_hours:
        return None, f"{rep.gpu_hours:,.0f} GPU-h"
    return None, "not published"


def cost_row(path: Path) -> dict[str, Any]:
    """One reproduction recipe: reported numbers, our estimate of the published set-up (with band), measured."""
    from qwen_recipes.recipe import load_recipe

    recipe = load_recipe(str(path))
    rep = recipe.reported_block()
    gpus, gpu = hardware_from_recipe(rep.hardware) or requested_hardware(recipe, None)
    arch, _ = recipe_arch(recipe)
    tok = dataset_tokens(recipe, rep.tokens) if rep.tokens else dataset_tokens(recipe)
    if rep.tokens:
        tok.source = rep.tokens_how or "reported tokens"
    e = estimate_one(recipe, arch, gpus, gpu, tok, recipe.get("price_per_gpu_hour"))
    hours, time_text = _reported_time(rep)
    row: dict[str, Any] = {
        "recipe": str(path),
        "model": recipe.get("model_name_or_path"),
        "source": rep.source,
        "reported_hardware": rep.hardware or "not published",
        "reported_hours": hours,
        "reported_gpu_hours": rep.gpu_hours or (hours * gpus if hours else None),
        "reported_time": time_text,
        "reported_usd": rep.cost_usd,
        "hardware": e.hardware,
        "tokens": e.tokens,
        "tokens_kind": e.tokens_kind,
        "tokens_source": tok.source,
        "fits": e.fits,
        "estimate_hours": e.hours,
        "estimate_hours_low": e.hours_low,
        "estimate_hours_high": e.hours_high,
        "estimate_gpu_hours": e.gpu_hours,
        "estimate_usd": e.usd,
        "estimate_usd_low": e.usd_low,
        "estimate_usd_high": e.usd_high,
        "provider": e.provider or e.price_source,
        "band_reasons": e.band_reasons,
    }
    reported_gpu_hours = row["reported_gpu_hours"]
    row["estimate_over_reported"] = e.gpu_hours / reported_gpu_hours if (e.gpu_hours and reported_gpu_hours) else None
    m = measured_cost(recipe)
    if m:
        predicted = (m.get("predicted") or {}).get("hours") or e.hours
        measured_h = (m.get("wall_seconds") or 0) / 3600
        row.update(measured_hours=measured_h, measured_usd=m.get("usd"), measured_over_estimate=measured_h / predicted
                   if predicted else None)  # fmt: skip
    else:
        row.update(measured_hours=None, measured_usd=None, measured_over_estimate=None)
    return row


def cost_rows(root: Path) -> list[dict[str, Any]]:
    """One row per reproduction recipe under `root`; a recipe that fails says why in its row."""
    rows = []
    for path in reproduction_recipes(root):
        try:
            rows.append(cost_row(path))
        except Exception as e:  # one bad recipe must not hide the others; say what went wrong in its row
            rows.append({"recipe": str(path), "error": str(e).splitlines()[0]})
    return rows


def estimate_text(r: dict[str, Any]) -> str:
    """'24 min (20 min–2.8 h), $21 ($18–$135)', or why there is none."""
    if r["tokens"] is None:
        return "tokens unknown: pass --tokens"
    if not r["fits"]:
        return f"does not fit on {r['hardware']}: no time or price"
    time = band_text(r["estimate_hours"], r["estimate_hours_low"], r["estimate_hours_high"], duration)
    usd = band_text(r["estimate_usd"], r["estimate_usd_low"], r["estimate_usd_high"], money)
    return f"{time}, {usd}"


def tokens_cell(r: dict[str, Any]) -> str:
    """Tokens per run and what kind of number it is."""
    kind = {"exact": "", "assumed": " (assumed)", "upper bound": " (upper bound)"}.get(r["tokens_kind"], "")
    return tokens_text(r["tokens"]) + kind


def measured_text(r: dict[str, Any]) -> str:
    """'no run yet' or '25 min, $20 (1.04x the estimate)'."""
    if r["measured_hours"] is None:
        return "no run yet"
    ratio = f" ({r['measured_over_estimate']:.2f}x the estimate)" if r["measured_over_estimate"] else ""
    return f"{duration(r['measured_hours'])}, {money(r['measured_usd'])}{ratio}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The README table: published run vs our estimate (band) vs measured."""
    lines = [
        "| recipe | reported hardware | reported time | reported $ | trained tokens | our estimate (band), same "
        "hardware | measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['recipe']}` | — | — | — | — | error: {r['error']} | — |")
            continue
        usd = money(r["reported_usd"]) if r["reported_usd"] else "not published"
        lines.append(
            f"| `{r['recipe']}` | {r['reported_hardware']} | {r['reported_time']} | {usd} | {tokens_cell(r)} "
            f"| {estimate_text(r)} | {measured_text(r)} |"
        )
    return "\n".join(lines)


def text_lines(r: dict[str, Any]) -> list[str]:
    """The console view of one row."""
    if "error" in r:
        return [f"{r['recipe']}: error: {r['error']}"]
    usd = money(r["reported_usd"]) if r["reported_usd"] else "cost not published"
    hw = r["reported_hardware"] if r["reported_hardware"] != "not published" else "hardware not published"
    time = r["reported_time"] if r["reported_time"] != "not published" else "time not published"
    lines = [
        r["recipe"],
        f"  reported: {hw}, {time}, {usd} ({r['source']})",
        f"  estimate on {r['hardware']}: {estimate_text(r)}",
        f"    tokens: {tokens_cell(r)} [{r['tokens_source']}]; price: {r['provider']}",
    ]
    if r["estimate_over_reported"]:
        lines.append(f"    estimate / reported time: {r['estimate_over_reported']:.2f}")
    lines += [f"    band: {reason}" for reason in r["band_reasons"]]
    lines.append(f"  measured: {measured_text(r)}")
    return lines


def write_block(path: Path, table: str) -> None:
    """Replace the table between the costs markers in `path` (appending the block if it has none)."""
    block = f"{MARK_START}\n{table}\n{MARK_END}"
    text = path.read_text() if path.exists() else ""
    if MARK_START in text and MARK_END in text:
        before, rest = text.split(MARK_START, 1)
        text = before + block + rest.split(MARK_END, 1)[1]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    path.write_text(text)

"""`qwen-recipes estimate RECIPE` and `qwen-recipes costs`: cost before a run, and published vs ours."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qwen_recipes.cost.estimate import dataset_tokens, estimate, estimate_one, requested_hardware
from qwen_recipes.cost.models import recipe_arch
from qwen_recipes.errors import user_errors
from qwen_recipes.recipe import Recipe

MARK_START, MARK_END = "<!-- costs:start -->", "<!-- costs:end -->"


def _money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def _hours(h: float | None) -> str:
    if h is None:
        return "—"
    if h * 60 < 1:
        return f"{h * 3600:.1f} s"
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def _load(path: str) -> Any:
    from qwen_recipes.recipe import load_recipe

    return load_recipe(path)


def format_estimate(result: dict[str, Any]) -> str:
    """The readable estimate: itemised memory on the requested hardware, then the comparison table."""
    e = result["estimate"]
    lines = [
        f"recipe: {result['recipe']}",
        f"model: {result['model']} ({result['parameters'] / 1e9:.2f}B parameters, {result['architecture_source']})"
        f" | {result['task']} / {result['method']}",
        f"tokens per epoch: {result['tokens_per_epoch'] or 'unknown'} ({result['tokens_source']})",
        "",
        f"memory per GPU on {e['hardware']} ({e['gpu_memory_gb']:g} GB each):",
    ]
    width = max(len(k) for k in e["memory_items_gb"])
    lines += [f"  {k:<{width}}  {v:8.2f} GB" for k, v in e["memory_items_gb"].items()]
    verdict = "fits" if e["fits"] else "DOES NOT FIT"
    lines.append(f"  {'total':<{width}}  {e['memory_total_gb']:8.2f} GB  -> {verdict}")
    lf = e["largest_fitting"]
    lines.append(
        f"  largest micro batch that fits: {lf['micro_batch'] or 'none'}; "
        f"longest sequence at micro batch 1: {lf['seq_len'] or 'none'}"
    )
    lines.append("")
    if e["tokens"] is None:
        lines.append("time and cost: unknown: the token count is unknown; pass --tokens N (tokens per epoch)")
    else:
        lines.append(
            f"work: {e['tokens']:,} tokens, {e['flops']['executed']:.3g} FLOPs executed "
            f"(expected utilisation {e['expected_mfu']:.0%} of peak)"
        )
        lines.append(
            f"time: {_hours(e['hours'])} on {e['hardware']} = {e['gpu_hours']:.2f} GPU-hours; "
            f"cost: {_money(e['usd'])} at {_money(e['usd_per_gpu_hour'])}/GPU-hour ({e['price_source']})"
        )
    lines += [f"note: {n}" for n in e["notes"]]
    if result["compare"]:
        lines += ["", "other hardware:", f"  {'hardware':<10} {'memory/GPU':>11} {'fits':>5} {'time':>9} {'cost':>8}"]
        for o in [e, *result["compare"]]:
            lines.append(
                f"  {o['hardware']:<10} {o['memory_total_gb']:>8.1f} GB {('yes' if o['fits'] else 'no'):>5} "
                f"{_hours(o['hours']):>9} {_money(o['usd']):>8}"
            )
    return "\n".join(lines)


@user_errors(prog="qwen-recipes estimate")
def estimate_main(argv: list[str]) -> int:
    """`qwen-recipes estimate RECIPE`: memory per GPU, time and dollars before a run (no weights loaded)."""
    p = argparse.ArgumentParser(prog="qwen-recipes estimate", description=estimate_main.__doc__)
    p.add_argument("recipe", help="recipe YAML")
    p.add_argument("--hardware", help="COUNTxGPU, e.g. 8xH100 (default: the recipe's hardware, else 1xH100)")
    p.add_argument("--tokens", type=int, help="training tokens per epoch (default: recipe dataset_tokens or counted)")
    p.add_argument("--price", type=float, help="USD per GPU-hour (default: the shipped price table)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    result = estimate(_load(args.recipe), args.hardware, args.tokens, args.price)
    print(json.dumps(result, indent=2) if args.json else format_estimate(result))
    return 0


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


def cost_rows(root: Path) -> list[dict[str, Any]]:
    """One row per reproduction recipe: reported time/$, our estimate on the same hardware, our measured cost."""
    rows = []
    for path in reproduction_recipes(root):
        row: dict[str, Any] = {"recipe": str(path)}
        try:
            recipe = _load(str(path))
            rep = recipe.reported_block()
            row.update(
                model=recipe.get("model_name_or_path"),
                reported_hardware=rep.hardware,
                reported_minutes=rep.wall_time_minutes,
                reported_usd=rep.cost_usd,
                reported_tokens=rep.tokens,
                source=rep.source,
            )
            gpus, gpu = requested_hardware(recipe, rep.hardware)
            arch, _ = recipe_arch(recipe)
            tok = dataset_tokens(recipe, rep.tokens)
            e = estimate_one(recipe, arch, gpus, gpu, tok, recipe.get("price_per_gpu_hour"))
            row.update(
                hardware=e.hardware,
                estimate_hours=e.hours,
                estimate_usd=e.usd,
                estimate_fits=e.fits,
                tokens_source=tok.source,
            )
            m = measured_cost(recipe)
            row.update(measured_hours=(m or {}).get("wall_seconds", 0) / 3600 if m else None)
            row.update(measured_usd=(m or {}).get("usd"))
        except Exception as e:  # one bad recipe must not hide the others; say what went wrong in its row
            row["error"] = str(e).splitlines()[0]
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The README table: reported vs estimated vs measured."""
    head = (
        "| recipe | hardware | reported time | reported $ | our estimate (same hardware) | measured |\n"
        "|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['recipe']}` | — | — | — | error: {r['error']} | — |")
            continue
        rep_t = f"{r['reported_minutes']:g} min" if r["reported_minutes"] else "not published"
        rep_usd = f"${r['reported_usd']:g}" if r["reported_usd"] else "not published"
        est = (
            "tokens unknown"
            if r["estimate_hours"] is None
            else f"{_hours(r['estimate_hours'])}, {_money(r['estimate_usd'])}"
        )
        meas = (
            "no run yet"
            if r["measured_hours"] is None
            else f"{_hours(r['measured_hours'])}, {_money(r['measured_usd'])}"
        )
        lines.append(f"| `{r['recipe']}` | {r['hardware']} | {rep_t} | {rep_usd} | {est} | {meas} |")
    return "\n".join(lines)


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


def costs_main(argv: list[str]) -> int:
    """`qwen-recipes costs`: reproduction recipes with reported, estimated and measured cost side by side."""
    p = argparse.ArgumentParser(prog="qwen-recipes costs", description=costs_main.__doc__)
    p.add_argument("--recipes", default="recipes", help="folder to search for recipes with a reported: block")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown (for the README)")
    p.add_argument("--write", metavar="FILE", help=f"also put the markdown table between {MARK_START} markers in FILE")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    args = p.parse_args(argv)
    rows = cost_rows(Path(args.recipes))
    if not rows:
        print(f"no recipe with a reported: block under {args.recipes}", file=sys.stderr)
        return 1
    table = markdown_table(rows)
    if args.write:
        write_block(Path(args.write), table)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif args.markdown:
        print(table)
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['recipe']}: error: {r['error']}")
                continue
            print(
                f"{r['recipe']}\n  reported: {r['reported_hardware']}, "
                f"{r['reported_minutes'] or 'no'} min, {_money(r['reported_usd'])} ({r['source']})\n"
                f"  estimate on {r['hardware']}: {_hours(r['estimate_hours'])}, {_money(r['estimate_usd'])}"
                f" [{r['tokens_source']}]\n  measured: "
                + (
                    "no run report yet"
                    if r["measured_hours"] is None
                    else f"{_hours(r['measured_hours'])}, {_money(r['measured_usd'])}"
                )
            )
    return 0

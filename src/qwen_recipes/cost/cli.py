"""`qwen-recipes estimate RECIPE` and `qwen-recipes costs`: cost before a run, and published vs ours."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qwen_recipes.cost.costs import (
    MARK_START,
    band_text,
    cost_rows,
    duration,
    markdown_table,
    money,
    reproduction_recipes,
    text_lines,
    write_block,
)
from qwen_recipes.cost.estimate import estimate
from qwen_recipes.errors import user_errors

__all__ = ["costs_main", "estimate_main", "format_estimate", "reproduction_recipes", "write_block"]


def _load(path: str) -> Any:
    from qwen_recipes.recipe import load_recipe

    return load_recipe(path)


def _time_and_cost(e: dict[str, Any]) -> list[str]:
    if e["tokens"] is None:
        return ["time and cost: unknown: the token count is unknown; pass --tokens N (tokens per epoch)"]
    lines = [
        f"work: {e['tokens']:,} tokens ({e['tokens_kind']}); {e['flops']['executed']:.3g} FLOPs executed "
        f"(causal attention, recomputation), {e['flops']['model']:.3g} model FLOPs"
    ]
    if not e["fits"]:
        return [*lines, f"time and cost: none: the set-up does not fit in {e['gpu_memory_gb']:g} GB per GPU, so it "
                "cannot run as configured (see the largest micro batch / sequence that fits above)"]  # fmt: skip
    t = e["timing"]
    lines.append(
        f"time on {e['hardware']}: expected {duration(e['hours'])}, band {duration(e['hours_low'])} to "
        f"{duration(e['hours_high'])}; utilisation {e['utilisation']:.0%} of peak (MFU {e['mfu']:.0%})"
    )
    parts = [("compute", t["compute"]), ("communication beyond compute", t["comm"]), ("fixed per micro-batch", t["fixed"]),
             ("4-bit dequantisation", t["dequant"]), ("CPU offload", t["offload"]), ("rollouts", t["generation"])]  # fmt: skip
    lines.append("  = " + " + ".join(f"{name} {duration(s / 3600)}" for name, s in parts if s > 0))
    lines += [f"  band: {reason}" for reason in e["band_reasons"]]
    if e["usd"] is None:
        lines.append("cost: no price known for this GPU; pass --price USD_PER_GPU_HOUR")
    else:
        lines.append(
            f"cost: expected {money(e['usd'])}, band {money(e['usd_low'])} to {money(e['usd_high'])} at "
            f"{money(e['usd_per_gpu_hour'])}/GPU-hour ({e['price_source']})"
        )
    others = [o for o in e["other_offers"] if o["provider"] != e["provider"]]
    if others:
        lines.append(
            "  other providers (expected time): "
            + "; ".join(f"{o['provider']} {o['sku']} {money(o['usd'])} ({o['as_of']}, {o['kind']})" for o in others)
        )
    return lines


def _hosted(result: dict[str, Any]) -> list[str]:
    lines = []
    for h in result["hosted"]:
        price = f"${h['usd_per_million_train_tokens']:g}/1M training tokens ({h['as_of']}; {h['source']})"
        cost = money(h["usd"]) if h["usd"] is not None else "—"
        lines.append(f"hosted: {h['service']} {h['model']} at {price} = {cost}")
        lines += [f"  {n}" for n in h["notes"]]
    return lines


def format_estimate(result: dict[str, Any]) -> str:
    """The readable estimate: memory on the requested hardware, time and dollars with bands, hosted, comparison."""
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
    lines += ["", *_time_and_cost(e), *_hosted(result)]
    lines += [f"note: {n}" for n in e["notes"]]
    if result["compare"]:
        lines += ["", "other hardware:", f"  {'hardware':<10} {'memory/GPU':>11} {'fits':>5}  time (band), cost (band)"]
        for o in [e, *result["compare"]]:
            if not o["fits"]:
                cell = "does not fit: no time or price"
            elif o["hours"] is None:
                cell = "tokens unknown"
            else:
                cell = (f"{band_text(o['hours'], o['hours_low'], o['hours_high'], duration)}, "
                        f"{band_text(o['usd'], o['usd_low'], o['usd_high'], money)}")  # fmt: skip
            fits = "yes" if o["fits"] else "no"
            lines.append(f"  {o['hardware']:<10} {o['memory_total_gb']:>8.1f} GB {fits:>5}  {cell}")
    return "\n".join(lines)


@user_errors(prog="qwen-recipes estimate")
def estimate_main(argv: list[str]) -> int:
    """`qwen-recipes estimate RECIPE`: memory per GPU, time and dollars (with bands) before a run, no weights loaded."""
    p = argparse.ArgumentParser(prog="qwen-recipes estimate", description=estimate_main.__doc__)
    p.add_argument("recipe", help="recipe YAML")
    p.add_argument("--hardware", help="COUNTxGPU, e.g. 8xH100 (default: the recipe's hardware, else 1xH100)")
    p.add_argument("--tokens", type=int, help="training tokens per epoch (default: recipe dataset_tokens or counted)")
    p.add_argument("--price", type=float, help="USD per GPU-hour (default: the price table's default provider)")
    p.add_argument("--provider", help="price from this provider's offer in the price table (e.g. Lambda, Nebius)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    result = estimate(_load(args.recipe), args.hardware, args.tokens, args.price, provider=args.provider)
    print(json.dumps(result, indent=2) if args.json else format_estimate(result))
    return 0


def costs_main(argv: list[str]) -> int:
    """`qwen-recipes costs`: reproduction recipes with reported, estimated (with band) and measured cost."""
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
            print("\n".join(text_lines(r)))
    return 0

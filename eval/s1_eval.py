"""Evaluate a model the way s1 does: budget forcing on AIME24 / MATH500 / GPQA-Diamond, greedy, no paid judge.

    python eval/s1_eval.py --model outputs/s1.1-qlora            # a full model or a merged one
    python eval/s1_eval.py --adapter outputs/s1.1-lora           # base model from adapter_config.json
    python eval/s1_eval.py --model simplescaling/s1.1-32B --num-ignore 1 --backend vllm --tensor-parallel-size 8

Benchmarks load from their Hub ids, or from local JSONL files (`--data aime24=path.jsonl`). Writes one JSONL
row per question and a summary table next to the model (`<model>/eval_s1/`), with s1's published numbers beside.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from qwen_recipes.evaluation.budget_forcing import BudgetConfig, budget_force, make_backend, render_prompt
from qwen_recipes.evaluation.scoring import score_choice, score_math

# Hub sources: s1 evaluates AIME24 on simplescaling/aime24_nofigures and MATH500 on the OpenAI 500-problem subset.
BENCHMARKS: dict[str, dict[str, Any]] = {
    "aime24": {"path": "simplescaling/aime24_nofigures", "split": "train", "kind": "math"},
    "math500": {"path": "HuggingFaceH4/MATH-500", "split": "test", "kind": "math"},
    "gpqa_diamond": {"path": "Idavidrein/gpqa", "name": "gpqa_diamond", "split": "train", "kind": "choice"},
}
# Published accuracies (%) from the s1 paper / README: with budget forcing, and without (in parentheses there).
PUBLISHED = {
    "s1-32B (budget forcing)": {"aime24": 56.7, "math500": 93.0, "gpqa_diamond": 59.6},
    "s1-32B (no forcing)": {"aime24": 50.0, "math500": 92.6, "gpqa_diamond": 56.6},
    "s1.1-32B (budget forcing)": {"aime24": 56.7, "math500": 95.4, "gpqa_diamond": 63.6},
    "s1.1-32B (no forcing)": {"aime24": 56.7, "math500": 94.4, "gpqa_diamond": 60.6},
    "Qwen2.5-32B-Instruct": {"aime24": 26.7, "math500": 84.0, "gpqa_diamond": 49.0},
}
# s1's GPQA prompt (lm-evaluation-harness tasks/gpqa/openai/utils.py).
GPQA_TEMPLATE = "{question}\n\nA) {a}\nB) {b}\nC) {c}\nD) {d}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model path or Hub id (with --adapter: the base; default from the adapter)")
    p.add_argument("--adapter", help="LoRA adapter folder (adapter_config.json); merged into the base for eval")
    p.add_argument("--benchmarks", default="aime24,math500,gpqa_diamond", help=f"comma list of {', '.join(BENCHMARKS)}")
    p.add_argument("--data", action="append", default=[], metavar="NAME=FILE", help="local JSONL for a benchmark")
    p.add_argument("--limit", type=int, help="first N questions per benchmark (smoke runs)")
    p.add_argument("--max-thinking-tokens", default="auto", help="int, or 'auto' = max-tokens - prompt - 100 (s1)")
    p.add_argument("--max-tokens", type=int, default=32768, help="total generation budget (s1: 32768)")
    p.add_argument("--num-ignore", type=int, default=0, help="times to replace end-of-thinking with --ignore-str")
    p.add_argument("--ignore-str", default="Wait")
    p.add_argument(
        "--markers", choices=("auto", "s1", "qwen3"), default="auto", help="auto: qwen3 if template has <think>"
    )
    p.add_argument("--max-answer-tokens", type=int, default=None, help="default: what is left of --max-tokens")
    p.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of the GPQA choice order")
    p.add_argument("--out", help="output folder (default: <model or adapter>/eval_s1, or eval_results/<name>)")
    args = p.parse_args(argv)
    if not args.model and not args.adapter:
        p.error("give --model, --adapter, or both")
    return args


def resolve_model(args: argparse.Namespace) -> tuple[str, str | None]:
    """(base model path/id, adapter path or None)."""
    if not args.adapter:
        return args.model, None
    cfg = Path(args.adapter) / "adapter_config.json"
    if not cfg.is_file():
        raise SystemExit(f"error: --adapter {args.adapter}: no adapter_config.json there")
    base = args.model or json.loads(cfg.read_text()).get("base_model_name_or_path")
    if not base:
        raise SystemExit(f"error: {cfg} has no base_model_name_or_path; pass --model with the base model")
    return base, args.adapter


def load_rows(name: str, local: dict[str, str]) -> list[dict[str, Any]]:
    """Raw rows of a benchmark: the local file when given, else the Hub dataset."""
    if name in local:
        path = Path(local[name])
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    from datasets import load_dataset

    spec = BENCHMARKS[name]
    return list(load_dataset(spec["path"], spec.get("name"), split=spec["split"]))


def _first(row: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if row.get(k) is not None:
            return row[k]
    raise KeyError(f"none of the columns {keys} in row with columns {sorted(row)}")


def to_question(name: str, i: int, row: dict[str, Any], seed: int) -> dict[str, Any]:
    """A benchmark row as {id, question, gold}: math rows keep their answer, GPQA rows get shuffled choices."""
    if BENCHMARKS[name]["kind"] == "math":
        return {
            "id": row.get("id", row.get("unique_id", i)),
            "question": _first(row, "problem", "question", "Problem"),
            "gold": str(_first(row, "answer", "Answer")),
        }
    if "choices" in row:  # already laid out: {question, choices: [4], answer: letter}
        a, b, c, d = row["choices"]
        return {
            "id": row.get("id", i),
            "question": GPQA_TEMPLATE.format(question=row["question"], a=a, b=b, c=c, d=d),
            "gold": row["answer"],
        }
    correct = row["Correct Answer"].strip()
    choices = [row[f"Incorrect Answer {k}"].strip() for k in (1, 2, 3)] + [correct]
    random.Random(f"{seed}-{i}").shuffle(choices)  # s1 shuffles unseeded; a seed makes runs comparable
    return {
        "id": row.get("Record ID", i),
        "gold": "ABCD"[choices.index(correct)],
        "question": GPQA_TEMPLATE.format(
            question=row["Question"].strip(), a=choices[0], b=choices[1], c=choices[2], d=choices[3]
        ),
    }


def load_model_and_tokenizer(base: str, adapter: str | None, backend: str, tp: int) -> tuple[Any, Any]:
    """Tokenizer and backend; an adapter is merged into its base in memory (transformers backend)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter or base)
    if adapter is None:
        kwargs = {"tensor_parallel_size": tp} if backend != "hf" else {}
        return tokenizer, make_backend(base, tokenizer, prefer=backend, **kwargs)
    if backend == "vllm":
        raise SystemExit("error: vLLM needs a merged model; run `qwen-recipes merge` first or use --backend hf")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto", device_map="auto")
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return tokenizer, make_backend(model, tokenizer, prefer="hf")


def output_dir(args: argparse.Namespace, base: str, adapter: str | None) -> Path:
    """Next to the model when it is a local folder, else eval_results/<name>."""
    if args.out:
        return Path(args.out)
    local = adapter or base
    if Path(local).is_dir():
        return Path(local) / "eval_s1"
    return Path("eval_results") / local.replace("/", "__")


def summary_table(scores: dict[str, float | None]) -> str:
    """Markdown table: this run next to the published s1 numbers."""
    names = list(BENCHMARKS)
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines.append("| **this run** | " + " | ".join(fmt(scores.get(n)) for n in names) + " |")
    for model, nums in PUBLISHED.items():
        lines.append(f"| {model} | " + " | ".join(fmt(nums.get(n)) for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write per-question JSONL + summary."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    local = dict(item.split("=", 1) for item in args.data if "=" in item)
    unknown = [n for n in [*names, *local] if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    base, adapter = resolve_model(args)
    tokenizer, backend = load_model_and_tokenizer(base, adapter, args.backend, args.tensor_parallel_size)
    markers = args.markers
    if markers == "auto":
        markers = "qwen3" if "<think>" in (tokenizer.chat_template or "") else "s1"
    out = output_dir(args, base, adapter)
    out.mkdir(parents=True, exist_ok=True)

    scores: dict[str, float | None] = {}
    details: dict[str, Any] = {}
    for name in names:
        rows = load_rows(name, local)[: args.limit]
        questions = [to_question(name, i, r, args.seed) for i, r in enumerate(rows)]
        prompts = [render_prompt(tokenizer, q["question"]) for q in questions]
        longest = max(len(tokenizer.encode(p)) for p in prompts)
        if args.max_thinking_tokens == "auto":
            thinking = max(0, args.max_tokens - longest - 100)  # s1 leaves ~100 tokens for the answer
        else:
            thinking = int(args.max_thinking_tokens)
        config = BudgetConfig.for_markers(
            markers,
            max_thinking_tokens=thinking,
            num_ignore=args.num_ignore,
            ignore_str=args.ignore_str,
            max_answer_tokens=args.max_answer_tokens or max(1, args.max_tokens - thinking),
        )
        started = time.time()
        outputs = budget_force(backend, tokenizer, prompts, config)
        correct = 0
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for q, o in zip(questions, outputs, strict=True):
                if BENCHMARKS[name]["kind"] == "math":
                    ok, extracted = score_math(o.text, q["gold"])
                else:
                    ok, extracted = score_choice(o.text, q["gold"])
                correct += ok
                f.write(
                    json.dumps(
                        {
                            "benchmark": name,
                            "id": q["id"],
                            "gold": q["gold"],
                            "extracted": extracted,
                            "correct": ok,
                            "thinking_tokens": o.thinking_tokens,
                            "answer_tokens": len(o.answer_ids),
                            "extensions": o.extensions,
                            "budget_exhausted": o.budget_exhausted,
                            "question": q["question"],
                            "response": o.text,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        scores[name] = 100.0 * correct / len(questions) if questions else None
        details[name] = {
            "questions": len(questions),
            "correct": correct,
            "accuracy": scores[name],
            "mean_thinking_tokens": sum(o.thinking_tokens for o in outputs) / max(1, len(outputs)),
            "budget_exhausted": sum(o.budget_exhausted for o in outputs),
            "seconds": round(time.time() - started, 1),
        }
        print(f"{name}: {correct}/{len(questions)} = {scores[name]:.1f}%")

    settings = {
        "model": base,
        "adapter": adapter,
        "markers": markers,
        "max_thinking_tokens": args.max_thinking_tokens,
        "max_tokens": args.max_tokens,
        "num_ignore": args.num_ignore,
        "ignore_str": args.ignore_str,
        "limit": args.limit,
        "seed": args.seed,
    }
    table = summary_table(scores)
    (out / "summary.json").write_text(
        json.dumps({"settings": settings, "benchmarks": details, "published": PUBLISHED}, indent=2) + "\n"
    )
    (out / "summary.md").write_text(f"# s1 evaluation\n\nSettings: `{json.dumps(settings)}`\n\n{table}\n")
    print(table)
    print(f"wrote {out}/summary.md, summary.json and one JSONL per benchmark")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Japanese evaluation: lm-evaluation-harness `japanese_leaderboard`, and an offline "does it answer in Japanese?" check.

    # JCommonsenseQA, JNLI, MARC-ja, JSQuAD, JAQKET v2, MGSM, XL-Sum, XWinograd (each task's own few-shot count)
    python eval/ja_eval.py harness --model outputs/cpt-7b-chat                   # a full or merged model
    python eval/ja_eval.py harness --adapter outputs/ja-7b-lora --limit 100      # base + adapter, 100 docs/task
    python eval/ja_eval.py harness --model outputs/x --device cpu --tasks my_task --include-path my_tasks/  # local
    # generation check on the bundled Japanese prompts: share of Japanese characters, characters per token, eos
    python eval/ja_eval.py generate --model outputs/cpt-7b-chat

The harness needs `pip install "lm_eval[japanese_leaderboard]"` (MeCab via fugashi for XL-Sum's ROUGE-2).
`--device` defaults to cuda when there is one, else cpu. With `--adapter` the base and adapter are loaded here
and merged in memory here, not by lm_eval (which resizes the base's embeddings to the tokenizer's length before
loading an adapter, so adapters that train `embed_tokens`/`lm_head`, as the Japanese CPT recipe does, fail).
Outputs go next to the model (`<model>/eval_ja/`, `eval_results/<hub id>/eval_ja/` for Hub models, or `--out`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from qwen_recipes.data.prepare.cpt import japanese_chars

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPTS = ROOT / "data/samples/ja_prompts.jsonl"
INSTALL = 'pip install "lm_eval[japanese_leaderboard]"'
# Metric reported per task, first one present wins (the tasks' metric_list in lm_eval/tasks/japanese_leaderboard).
PRIMARY_METRICS = ("exact_match", "acc", "acc_norm", "rouge2", "f1")


class EvalError(Exception):
    """A setup problem; the message says what to install or pass."""


def resolve_model(model: str | None, adapter: str | None) -> str:
    """The base model: --model, or the adapter's base_model_name_or_path."""
    if model:
        return model
    if not adapter:
        raise EvalError("give --model (a full or merged model) or --adapter (a LoRA folder; its base is read from it)")
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.exists():
        raise EvalError(f"--adapter {adapter}: no adapter_config.json; pass a LoRA output folder or use --model")
    return json.loads(cfg.read_text())["base_model_name_or_path"]


def default_out(model: str, adapter: str | None) -> Path:
    """`<adapter or local model>/eval_ja`, or `eval_results/<hub id>/eval_ja`."""
    where = adapter or model
    return Path(where) / "eval_ja" if Path(where).exists() else Path("eval_results") / where / "eval_ja"


# ---------------------------------------------------------------- lm-evaluation-harness


def harness_model_args(model: str, adapter: str | None, dtype: str) -> str:
    """lm-eval's `model_args` string for the HF backend (peft= loads the adapter on top of the base)."""
    args = f"pretrained={model},dtype={dtype}"
    return args + (f",peft={adapter}" if adapter else "")


def summarise_harness(results: dict[str, Any]) -> dict[str, Any]:
    """Per task: its primary metric and stderr; plus the unweighted average of those metrics."""
    tasks = {}
    for task, metrics in sorted(results.get("results", {}).items()):
        for name in PRIMARY_METRICS:
            key = next((k for k in metrics if k.split(",")[0] == name), None)
            if key is not None and isinstance(metrics[key], (int, float)):
                stderr = metrics.get(key.replace(name, f"{name}_stderr", 1))
                tasks[task] = {
                    "metric": key,
                    "value": float(metrics[key]),
                    "stderr": stderr if isinstance(stderr, (int, float)) else None,
                }
                break
    values = [t["value"] for name, t in tasks.items() if name != "japanese_leaderboard"]
    return {"tasks": tasks, "average": sum(values) / len(values) if values else None}


def default_device() -> str:
    """cuda when there is a GPU, else cpu (lm_eval itself would pick cuda and fail on CPU-only machines)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_adapter_model(model: str, adapter: str, dtype: str, device: str) -> tuple[Any, Any]:
    """Base + adapter merged in memory, tied embeddings handled as `qwen-recipes merge` does, and the tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen_recipes.outputs.merge import settle_tied_embeddings

    base = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
    from qwen_recipes.outputs.merge import saved_embedding_rows

    rows = saved_embedding_rows(Path(adapter))
    if rows is not None and rows != base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(rows)  # the vocabulary the adapter was trained with, not the tokenizer's length
    head, emb = base.get_output_embeddings(), base.get_input_embeddings()
    tied = head is not None and head.weight is emb.weight
    if tied:  # a LoRA merged into a tied head must not change the input embeddings
        head.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=False)
    lm = PeftModel.from_pretrained(base, adapter, is_trainable=False).merge_and_unload()
    if tied:
        settle_tied_embeddings(lm)  # re-tied when still equal, else tie_word_embeddings: false (lm_eval re-ties)
    has_tokenizer = (Path(adapter) / "tokenizer_config.json").exists()
    return lm.to(device).eval(), AutoTokenizer.from_pretrained(adapter if has_tokenizer else model)


def run_harness(args: argparse.Namespace) -> int:
    """Run the harness tasks and write results.json, summary.json and summary.md."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise EvalError(f"lm-evaluation-harness is not installed; install it with: {INSTALL}") from None
    model = resolve_model(args.model, args.adapter)
    out = Path(args.out) if args.out else default_out(model, args.adapter)
    device = args.device or default_device()
    if args.adapter:
        from lm_eval.models.huggingface import HFLM

        lm, tok = load_adapter_model(model, args.adapter, args.dtype, device)
        backend: dict[str, Any] = {"model": HFLM(pretrained=lm, tokenizer=tok, batch_size=args.batch_size)}
    else:
        backend = {"model": "hf", "model_args": harness_model_args(model, None, args.dtype), "device": device}
    tasks = None
    if args.include_path:  # indexing lm_eval's ~14,000 built-in task files takes a minute: skip it when not needed
        tasks = TaskManager(include_path=args.include_path, include_defaults=False)
        if not set(args.tasks.split(",")) <= set(tasks.all_tasks):
            tasks = TaskManager(include_path=args.include_path)
    started = time.time()
    results = lm_eval.simple_evaluate(
        **backend,
        task_manager=tasks,
        tasks=args.tasks.split(","),
        num_fewshot=args.num_fewshot,
        batch_size=args.batch_size,
        limit=args.limit,
        apply_chat_template=args.apply_chat_template,
        fewshot_as_multiturn=args.apply_chat_template,
        log_samples=args.log_samples,
    )
    summary = summarise_harness(results) | {
        "model": model,
        "adapter": args.adapter,
        "device": device,
        "tasks_requested": args.tasks,
        "limit": args.limit,
        "wall_seconds": round(time.time() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results.get("results", {}), indent=2, ensure_ascii=False, default=str))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    lines = ["| task | metric | value | stderr |", "|---|---|---|---|"]
    for task, m in summary["tasks"].items():
        stderr = "" if m["stderr"] is None else f"{m['stderr']:.4f}"
        lines.append(f"| {task} | {m['metric']} | {m['value']:.4f} | {stderr} |")
    if summary["average"] is not None:
        lines.append(f"| **average** | | {summary['average']:.4f} | |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    if args.log_samples:  # per document: the model's answers as lm_eval scored them (log-likelihoods, ...)
        samples = {t: [{"doc_id": x["doc_id"], "resps": x["filtered_resps"]} for x in rows]
                   for t, rows in results.get("samples", {}).items()}  # fmt: skip
        (out / "samples.json").write_text(json.dumps(samples, indent=1, ensure_ascii=False, default=str))
    print("\n".join(lines))
    print(f"wrote {out}/summary.json")
    return 0


# ---------------------------------------------------------------- offline generation check


def answer_stats(text: str, tokens: int, min_share: float = 0.5) -> dict[str, Any]:
    """Character statistics of one answer: Japanese share, characters per generated token."""
    visible = sum(1 for ch in text if not ch.isspace())
    ja = japanese_chars(text)
    share = ja / visible if visible else 0.0
    return {
        "chars": visible,
        "japanese_chars": ja,
        "japanese_share": share,
        "tokens": tokens,
        "chars_per_token": visible / tokens if tokens else 0.0,
        "in_japanese": share >= min_share,
    }


def summarise_answers(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the answers: how many are in Japanese, mean share, chars/token, how many stopped at eos."""
    n = len(rows)
    chars = sum(r["chars"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    return {
        "answers": n,
        "in_japanese": sum(r["in_japanese"] for r in rows),
        "in_japanese_rate": sum(r["in_japanese"] for r in rows) / n if n else 0.0,
        "mean_japanese_share": sum(r["japanese_share"] for r in rows) / n if n else 0.0,
        "chars_per_token": chars / tokens if tokens else 0.0,
        "japanese_chars_per_token": sum(r["japanese_chars"] for r in rows) / tokens if tokens else 0.0,
        "stopped_at_eos": sum(r["stopped"] for r in rows),
    }


def load_prompts(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """Prompt rows ({id, prompt}) of a JSONL file."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row.get("prompt"), str):
                raise EvalError(f"{path}:{i}: a prompt row needs a string 'prompt'")
            rows.append({"id": row.get("id", f"row-{i}"), "prompt": row["prompt"]})
    return rows[:limit] if limit else rows


def load_for_generation(model: str, adapter: str | None) -> tuple[Any, Any]:
    """Model (+ adapter) and tokenizer; the adapter folder's tokenizer carries the training template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter)
    tok = AutoTokenizer.from_pretrained(adapter or model)
    tok.padding_side = "left"  # left-pad for batched generation
    return lm.to("cuda" if torch.cuda.is_available() else "cpu").eval(), tok


def generate_check(
    model: str,
    adapter: str | None,
    prompts: list[dict[str, Any]],
    out: Path,
    max_new_tokens: int = 256,
    min_share: float = 0.5,
    thinking: bool = False,
) -> dict[str, Any]:
    """Answer each prompt greedily; write answers.jsonl and summary.json; return the summary."""
    import torch

    lm, tok = load_for_generation(model, adapter)
    eos = lm.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
    rows = []
    for p in prompts:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": p["prompt"]}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            enable_thinking=thinking,  # Qwen3 templates read it; others ignore it
        ).to(lm.device)
        with torch.no_grad():
            gen = lm.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        new = gen[0, ids["input_ids"].shape[1] :].tolist()
        stopped = bool(new) and new[-1] in eos_ids
        content = [t for t in new if t not in eos_ids]
        text = tok.decode(content, skip_special_tokens=True)
        prompt_tokens = len(tok(p["prompt"], add_special_tokens=False)["input_ids"])
        rows.append(
            {"id": p["id"], "prompt": p["prompt"], "answer": text, "stopped": stopped}
            | answer_stats(text, len(content), min_share)
            | {"prompt_tokens": prompt_tokens, "prompt_japanese_chars": japanese_chars(p["prompt"])}
        )
    prompt_tokens = sum(r["prompt_tokens"] for r in rows)
    summary = summarise_answers(rows) | {
        "model": model,
        "adapter": adapter,
        "min_share": min_share,
        "max_new_tokens": max_new_tokens,
        # The tokenizer's density on the prompts themselves (~1.5 Japanese characters per token for Qwen).
        "prompt_japanese_chars_per_token": sum(r["prompt_japanese_chars"] for r in rows) / prompt_tokens
        if prompt_tokens
        else 0.0,
    }
    out.mkdir(parents=True, exist_ok=True)
    with (out / "answers.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def run_generate(args: argparse.Namespace) -> int:
    """The offline generation check from the command line."""
    model = resolve_model(args.model, args.adapter)
    out = Path(args.out) if args.out else default_out(model, args.adapter)
    prompts = load_prompts(Path(args.prompts), args.limit)
    s = generate_check(model, args.adapter, prompts, out, args.max_new_tokens, args.min_share, args.thinking)
    print(
        f"{s['in_japanese']}/{s['answers']} answers in Japanese (share >= {s['min_share']}), mean share "
        f"{s['mean_japanese_share']:.2f}, {s['chars_per_token']:.2f} chars/token, "
        f"{s['stopped_at_eos']}/{s['answers']} stopped at eos; wrote {out}/answers.jsonl"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: `harness` or `generate`."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("harness", "generate"):
        s = sub.add_parser(name)
        s.add_argument("--model", help="model path or Hub id (with --adapter: the base; default from the adapter)")
        s.add_argument("--adapter", help="LoRA adapter folder (adapter_config.json)")
        s.add_argument("--out", help="output folder (default: <model or adapter>/eval_ja)")
        s.add_argument("--limit", type=int, help="first N documents per task / prompts (smoke runs)")
    h = sub.choices["harness"]
    h.add_argument("--tasks", default="japanese_leaderboard", help="comma list of lm-eval tasks or groups")
    h.add_argument("--num-fewshot", type=int, help="override every task's own few-shot count")
    h.add_argument("--batch-size", default="auto")
    h.add_argument("--dtype", default="bfloat16", help="bfloat16, float16 or float32")
    h.add_argument("--device", help="cuda, cuda:1, cpu, mps (default: cuda when available, else cpu)")
    h.add_argument("--include-path", help="folder of extra lm-eval task YAMLs (e.g. a local task)")
    h.add_argument("--log-samples", action="store_true", help="also write samples.json (per-document answers)")
    h.add_argument("--apply-chat-template", action="store_true", help="chat-format prompts (instruct models)")
    g = sub.choices["generate"]
    g.add_argument("--prompts", default=str(DEFAULT_PROMPTS), help="JSONL of {id, prompt}")
    g.add_argument("--max-new-tokens", type=int, default=256)
    g.add_argument("--min-share", type=float, default=0.5, help="Japanese share above which an answer counts")
    g.add_argument("--thinking", action="store_true", help="let Qwen3 think first (enable_thinking=True)")
    args = p.parse_args(argv)
    try:
        return run_harness(args) if args.cmd == "harness" else run_generate(args)
    except EvalError as e:
        print(f"ja_eval: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""One GPU-benchmark measurement: build a random-init model, train N steps, write tokens/s, MFU and peak memory.

    python -m bench.gpu_worker '{"arch": "qwen3-8b", "method": "qlora", "liger": false, "gc": true, ...}' OUT.json
    torchrun --nproc_per_node 8 -m bench.gpu_worker '{... "method": "full"}' OUT.json   # ZeRO-3 sharded

Everything is built from the architecture's config: no weights, tokenizer or data are downloaded. The data are
random token ids in rows of exactly `seq_len`, trained through TRL's SFTTrainer with our engine's settings
(padding-free BFD packing, bf16, LoRA r=16 on all linear layers, NF4 double-quantised base for QLoRA).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

ZERO3 = {
    "zero_optimization": {
        "stage": 3,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "stage3_gather_16bit_weights_on_model_save": False,
    },
    "bf16": {"enabled": "auto"},
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
}


def _quantize_linears(model: Any, dtype: Any, device: Any) -> None:
    """Swap every decoder nn.Linear for an NF4 (double-quantised) bitsandbytes Linear4bit, one layer at a time."""
    import torch
    from bitsandbytes.nn import Linear4bit, Params4bit

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, torch.nn.Linear) or name == "lm_head":
                continue
            q = Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=dtype,
                compress_statistics=True,
                quant_type="nf4",
                quant_storage=dtype,
                device="meta",
            )
            weight = Params4bit(
                child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4", quant_storage=dtype
            )
            q.weight = weight.to(device)  # quantizes here
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, q)
            del child


class StepTimer:
    """Times optimizer steps after `warmup` of them (first steps include allocator and kernel warm-up)."""

    def __init__(self, warmup: int) -> None:
        from transformers import TrainerCallback

        self.warmup, self.t0, self.t1 = warmup, None, None
        timer = self

        class _CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                timer._sync()
                if state.global_step == timer.warmup:
                    timer.t0 = time.perf_counter()
                timer.t1 = time.perf_counter()

        self.callback = _CB()

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def measure(opts: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration and return its measurements (see module docstring for the keys of `opts`)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from bench.gpu_archs import build_config, flops_per_token, parameter_count, peak_tflops

    cuda = torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dtype = torch.bfloat16 if cuda else torch.float32
    method, seq_len, batch, steps = opts["method"], opts["seq_len"], opts["batch"], opts["steps"]
    sharded = method == "full" and world > 1
    attn = opts.get("attn") or _default_attn(cuda)

    args = SFTConfig(  # before the model: under ZeRO-3 this makes from_config build the model already sharded
        output_dir=tempfile.mkdtemp(prefix="qwen-bench-gpu-"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        learning_rate=1e-5 if method == "full" else 2e-4,
        gradient_checkpointing=opts["gc"],
        use_liger_kernel=opts["liger"],
        bf16=cuda,
        use_cpu=not cuda,
        optim="adamw_torch_fused" if cuda else "adamw_torch",
        packing=True,
        packing_strategy="bfd",
        max_length=seq_len,
        logging_steps=max(1, steps),
        save_strategy="no",
        report_to="none",
        deepspeed=ZERO3 if sharded else None,
        dataloader_num_workers=0,
        seed=0,
    )
    torch.manual_seed(0)
    config = build_config(opts["arch"])
    config._attn_implementation = attn
    t_build = time.perf_counter()
    if sharded:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        with device:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if method == "qlora":
        _quantize_linears(model, dtype, device)
    build_seconds = time.perf_counter() - t_build
    peft = None
    if method in ("lora", "qlora"):
        peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")

    g = torch.Generator().manual_seed(0)
    rows = steps * batch * world
    ids = torch.randint(0, config.vocab_size, (rows, seq_len), generator=g).tolist()
    dataset = Dataset.from_dict({"input_ids": ids})
    timer = StepTimer(opts["warmup"])
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=_stub_tokenizer(),
        peft_config=peft,
        callbacks=[timer.callback],
    )
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer.train()
    timed_steps = steps - opts["warmup"]
    elapsed = (timer.t1 - timer.t0) if timer.t0 is not None else None
    tokens_per_gpu_step = batch * seq_len
    tps = tokens_per_gpu_step * timed_steps / elapsed if elapsed else None
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = opts.get("peak_tflops") or (peak_tflops(device_name) if cuda else None)
    mfu = tps * flops_per_token(opts["arch"], seq_len, method) / (peak * 1e12) if (tps and peak) else None
    return {
        **opts,
        "status": "ok",
        "attn": attn,
        "world_size": world,
        "sharded": "zero3" if sharded else None,
        "device": device_name,
        "params": parameter_count(opts["arch"])["total"],
        "quantized_linears": sum(type(m).__name__ == "Linear4bit" for m in model.modules()),
        "build_seconds": round(build_seconds, 2),
        "tokens_per_s_per_gpu": tps,
        "mfu": mfu,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else _rss(),
        "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)) if cuda else None,
        "final_loss": next((e["train_loss"] for e in trainer.state.log_history if "train_loss" in e), None),
    }


def _stub_tokenizer() -> Any:
    """A two-token tokenizer: the data are already ids; the trainer only needs pad/eos ids (no download)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(WordLevel({"<pad>": 0, "<eos>": 1}, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")


def _default_attn(cuda: bool) -> str:
    # Padding-free batches need a varlen kernel on GPU; SDPA would build a dense block-diagonal mask instead.
    if cuda:
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            return "sdpa"
    return "sdpa"


def _rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def main(argv: list[str] | None = None) -> int:
    """Measure one configuration given as JSON, write the result (or the error) as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    opts, out = json.loads(argv[0]), argv[1]
    try:
        result = measure(opts)
    except Exception as e:  # OOM and friends are results too: the table says which cell failed and why
        import traceback

        traceback.print_exc()
        result = {**opts, "status": "error", "error": f"{type(e).__name__}: {str(e)[:300]}"}
        if "out of memory" in str(e).lower():
            result["status"] = "oom"
    if int(os.environ.get("RANK", 0)) == 0:
        with open(out, "w") as fh:
            json.dump(result, fh)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

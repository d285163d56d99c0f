"""`python -m bench.experts [--tokens N] [--repeats R]`: MoE expert kernels (`experts_implementation`) side by side.

A small Qwen3-MoE (4 layers, hidden 128, 16 experts of 256, top-4) trains one forward + backward per measurement
with each of transformers' expert implementations, one after the other on the same batch; best of `repeats`.
Prints tokens/s and the ratio to `eager` (the per-expert loop). On CPU this measures the dispatch overhead of the
loop, not GPU GEMM efficiency; run it on a GPU for the numbers that matter there. batched_mm gathers every routed
token's expert weights (tokens x top-k x 3·H·I values): its memory grows with the batch, which is why the default
size is small (2,048 tokens of this shape already need ~9 GB with it).
"""

from __future__ import annotations

import argparse
import time


def run(tokens: int = 512, repeats: int = 3) -> dict[str, float]:
    """tokens/s of forward + backward for eager, batched_mm and grouped_mm."""
    import torch

    from qwen_recipes.testbed import tiny_model

    shape = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4)
    shape |= dict(num_key_value_heads=2, head_dim=32, num_experts=16, num_experts_per_tok=4, moe_intermediate_size=256)
    shape |= dict(vocab_size=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    ids = torch.randint(3, 1000, (max(1, tokens // 512), min(tokens, 512)))
    out: dict[str, float] = {}
    for impl in ("eager", "batched_mm", "grouped_mm"):
        model = tiny_model("qwen3_moe", seed=0, experts_implementation=impl, **shape).train()
        best = float("inf")
        for _ in range(repeats + 1):  # the first one warms up
            t0 = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            best = min(best, time.perf_counter() - t0)
        out[impl] = ids.numel() / best
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.experts", description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    result = run(args.tokens, args.repeats)
    for impl, tps in result.items():
        print(f"{impl:>11}: {tps:8.0f} tokens/s  ({tps / result['eager']:.2f}x eager)")


if __name__ == "__main__":
    main()

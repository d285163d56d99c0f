"""Real Qwen architectures as configs (from their published config.json; no download), and FLOP/MFU arithmetic."""

from __future__ import annotations

from typing import Any

# Values copied from each model's config.json on the Hub (Qwen/Qwen2.5-7B-Instruct, Qwen/Qwen3-8B,
# Qwen/Qwen2.5-32B-Instruct); weights are random, so speed and memory are real and the loss is not.
ARCHS: dict[str, dict[str, Any]] = {
    "qwen2.5-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    "qwen3-8b": {
        "model_type": "qwen3",
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "max_position_embeddings": 40960,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    "qwen2.5-32b": {
        "model_type": "qwen2",
        "hidden_size": 5120,
        "intermediate_size": 27648,
        "num_hidden_layers": 64,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    # CPU smoke test only: the test-bed shape with a small vocabulary so a step takes milliseconds.
    "tiny": {
        "model_type": "qwen3",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "vocab_size": 2048,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
    },
}

# Dense bf16 peak TFLOP/s per GPU (vendor datasheets, no sparsity), matched against torch's device name.
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0}


def build_config(arch: str) -> Any:
    """A transformers config object for one of ARCHS."""
    from transformers import Qwen2Config, Qwen3Config

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    values = dict(ARCHS[arch])
    cls = Qwen3Config if values.pop("model_type") == "qwen3" else Qwen2Config
    return cls(**values)


def parameter_count(arch: str) -> dict[str, int]:
    """Total and non-embedding parameters of an architecture, from its shape."""
    a = ARCHS[arch]
    h, inter, layers, vocab = a["hidden_size"], a["intermediate_size"], a["num_hidden_layers"], a["vocab_size"]
    head_dim = a.get("head_dim") or h // a["num_attention_heads"]
    q, kv = a["num_attention_heads"] * head_dim, a["num_key_value_heads"] * head_dim
    attn = h * q + 2 * h * kv + q * h + (2 * kv + q if a["model_type"] == "qwen2" else 0)  # Qwen2 has qkv biases
    norms = 2 * h + (2 * head_dim if a["model_type"] == "qwen3" else 0)  # Qwen3 q/k norms
    per_layer = attn + 3 * h * inter + norms
    embed = vocab * h
    head = 0 if a["tie_word_embeddings"] else vocab * h
    return {"total": layers * per_layer + embed + head + h, "non_embedding": layers * per_layer + head + h}


def flops_per_token(arch: str, seq_len: int, method: str) -> float:
    """Model FLOPs per trained token (PaLM appendix B): 6N + 12·L·d_attn·T for full, 4N + 8·L·d_attn·T for (Q)LoRA.

    N counts every matmul weight but the input embedding; frozen weights skip their weight gradients (2N of 6N).
    Gradient-checkpointing recompute is not counted: MFU is model FLOPs over peak, whatever the recompute.
    """
    a = ARCHS[arch]
    n = parameter_count(arch)["non_embedding"]
    d_attn = a["num_attention_heads"] * (a.get("head_dim") or a["hidden_size"] // a["num_attention_heads"])
    if method == "full":
        return 6 * n + 12 * a["num_hidden_layers"] * d_attn * seq_len
    return 4 * n + 8 * a["num_hidden_layers"] * d_attn * seq_len


def peak_tflops(device_name: str) -> float | None:
    """Datasheet bf16 peak for a GPU name, None when unknown (pass --peak-tflops)."""
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None

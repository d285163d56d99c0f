"""GPUs we know (memory, peak dense bf16 throughput), their prices, and `8xH100`-style hardware specs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from qwen_recipes.errors import UserError


@dataclass(frozen=True)
class GPU:
    """One GPU type: memory, peak dense bf16 FLOP/s, memory bandwidth, GPU-to-GPU link and architecture generation."""

    name: str
    memory_gb: float
    peak_tflops: float  # dense (no sparsity) bf16 tensor throughput with fp32 accumulation
    bandwidth_tbs: float  # HBM/GDDR bandwidth (TB/s): sets the 4-bit dequantisation cost
    link_gbs: float  # GPU-to-GPU bandwidth per direction inside a node (GB/s): NVLink, else PCIe
    generation: str  # ampere | ada | hopper | blackwell | turing: the time model's utilisation class
    note: str = ""
    bf16: bool = True  # bf16 tensor cores (Ampere and later); without them training runs fp16 or fp32


# Vendor datasheets: peak dense bf16 TFLOP/s (the "with sparsity" figures halved; T4 has no bf16: its fp16 peak),
# memory bandwidth, and NVLink per direction (900 GB/s bidirectional = 450) or the PCIe slot (Gen4 x16 = 32 GB/s,
# Gen5 = 64) for GPUs without NVLink.
GPUS: dict[str, GPU] = {
    g.name: g
    for g in [
        GPU("H100", 80, 989.0, 3.35, 450, "hopper", "H100 SXM5 80GB"),
        GPU("H100-PCIe", 80, 756.0, 2.0, 64, "hopper", "H100 PCIe 80GB"),
        GPU("H200", 141, 989.0, 4.8, 450, "hopper", "H200 SXM 141GB"),
        GPU("B200", 180, 2250.0, 8.0, 900, "blackwell", "B200 180GB"),
        GPU("A100-80GB", 80, 312.0, 2.039, 300, "ampere", "A100 SXM 80GB"),
        GPU("A100-40GB", 40, 312.0, 1.555, 300, "ampere", "A100 SXM 40GB"),
        GPU("A40", 48, 149.7, 0.696, 32, "ampere", "A40 48GB (PCIe)"),
        GPU("L40S", 48, 362.0, 0.864, 32, "ada", "L40S 48GB"),
        GPU("A6000", 48, 154.8, 0.768, 32, "ampere", "RTX A6000 48GB"),
        GPU("RTX6000Ada", 48, 364.2, 0.96, 32, "ada", "RTX 6000 Ada 48GB"),
        GPU("A10", 24, 125.0, 0.6, 32, "ampere", "A10 24GB"),
        GPU("A10G", 24, 70.0, 0.6, 32, "ampere", "A10G 24GB (AWS g5)"),
        GPU("L4", 24, 121.0, 0.3, 32, "ada", "L4 24GB"),
        GPU("RTX4090", 24, 165.2, 1.008, 32, "ada", "GeForce RTX 4090 24GB (fp32 accumulate)"),
        GPU("RTX3090", 24, 71.0, 0.936, 32, "ampere", "GeForce RTX 3090 24GB (fp32 accumulate)"),
        GPU("T4", 16, 65.0, 0.32, 16, "turing", "T4 16GB (fp16 only, no bf16)", bf16=False),
    ]
}
# GPUs per node when a count spans several machines (HGX/DGX boards hold 8).
GPUS_PER_NODE = 8
# Spellings people use for the same GPU.
ALIASES = {
    "H100-SXM": "H100",
    "H100-80GB": "H100",
    "H100SXM": "H100",
    "A100": "A100-80GB",
    "A100-80G": "A100-80GB",
    "A100-40G": "A100-40GB",
    "4090": "RTX4090",
    "3090": "RTX3090",
    "RTX-4090": "RTX4090",
    "RTX-3090": "RTX3090",
    "RTX-6000-ADA": "RTX6000Ada",
    "A6000-48GB": "A6000",
    "L40S-48GB": "L40S",
    "L4-24GB": "L4",
    "A40-48GB": "A40",
}
# Device names as torch.cuda.get_device_name() reports them -> our type (first match wins; order matters).
DEVICE_NAME_PATTERNS = [
    (r"H100.*PCIe", "H100-PCIe"),
    (r"H100", "H100"),
    (r"H200", "H200"),
    (r"B200", "B200"),
    (r"A100.*80", "A100-80GB"),
    (r"A100", "A100-40GB"),
    (r"L40S", "L40S"),
    (r"\bA40\b", "A40"),
    (r"RTX 6000 Ada", "RTX6000Ada"),
    (r"A6000", "A6000"),
    (r"A10G", "A10G"),
    (r"\bA10\b", "A10"),
    (r"\bL4\b", "L4"),
    (r"4090", "RTX4090"),
    (r"3090", "RTX3090"),
    (r"\bT4\b", "T4"),
]
# The comparison the estimate prints besides the requested hardware (issue #5: 1x24/48/80 GB, 8 and 16 H100).
COMPARE = ["1xL4", "1xL40S", "1xH100", "8xH100", "16xH100"]

HARDWARE_FORM = "COUNTxGPU, e.g. 8xH100, 1xL4 or 2xA100-80GB"


class HardwareError(UserError):
    """A hardware spec we cannot read or a GPU type we do not know."""


def known_gpus() -> str:
    """Comma-separated known GPU types with their memory."""
    return ", ".join(f"{g.name} ({g.memory_gb:g} GB)" for g in GPUS.values())


def gpu(name: str) -> GPU:
    """The GPU of a type name (case-insensitive, aliases allowed); unknown names list the known ones."""
    key = name.strip()
    by_upper = {k.upper(): k for k in GPUS} | {k.upper(): v for k, v in ALIASES.items()}
    found = by_upper.get(key.upper())
    if found is None:
        raise HardwareError(f"unknown GPU type {name!r}; known GPU types: {known_gpus()}")
    return GPUS[found]


def parse_hardware(spec: str) -> tuple[int, GPU]:
    """`8xH100` -> (8, GPU H100); a malformed spec says the right form."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×*]\s*([A-Za-z0-9][A-Za-z0-9 _-]*?)\s*", spec or "")
    if not m:
        raise HardwareError(f"--hardware {spec!r} is not of the form {HARDWARE_FORM}")
    count = int(m.group(1))
    if count < 1:
        raise HardwareError(f"--hardware {spec!r}: the GPU count must be at least 1 (form: {HARDWARE_FORM})")
    return count, gpu(m.group(2).replace(" ", ""))


def gpu_from_device_name(device_name: str | None) -> GPU | None:
    """Our GPU type for a CUDA device name such as 'NVIDIA H100 80GB HBM3', or None if unknown."""
    for pattern, name in DEVICE_NAME_PATTERNS:
        if device_name and re.search(pattern, device_name, re.IGNORECASE):
            return GPUS[name]
    return None


def hardware_from_recipe(text: str | None) -> tuple[int, GPU] | None:
    """Best-effort reading of a recipe's free-text `hardware:` (e.g. '16xH100-80GB (2 nodes x 8)')."""
    if not text:
        return None
    m = re.match(r"\s*(\d+)\s*[xX×]\s*([A-Za-z0-9-]+)", text)
    if not m:
        return None
    count, name = int(m.group(1)), m.group(2)
    for candidate in (name, re.sub(r"-?\d+GB$", "", name, flags=re.IGNORECASE)):
        try:
            return count, gpu(candidate)
        except HardwareError:
            continue
    if re.fullmatch(r"\d+GB", name, re.IGNORECASE):
        # '1x24GB (L4 / RTX 4090)': the cheapest listed GPU of that memory size.
        size = float(name[:-2])
        matches = [g for g in GPUS.values() if g.memory_gb == size]
        if matches:
            return count, min(matches, key=lambda g: price(g.name)[0] or 1e9)
    return None


@cache
def price_table() -> dict[str, dict]:
    """The shipped price table: GPU type -> {default: provider, offers: [{provider, sku, usd_per_gpu_hour, ...}]}."""
    data = json.loads((Path(__file__).parent / "prices.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def offers(gpu_name: str) -> list[dict]:
    """Every dated offer the price table lists for a GPU type (cheapest first)."""
    row = price_table().get(gpu_name) or {}
    return sorted(row.get("offers", []), key=lambda o: o["usd_per_gpu_hour"])


def offer(gpu_name: str, provider: str | None = None) -> dict | None:
    """The offer used for a GPU: the named provider's (case-insensitive prefix), else the table's default."""
    row = price_table().get(gpu_name)
    if not row:
        return None
    want = (provider or row["default"]).lower()
    for o in row["offers"]:
        if o["provider"].lower() == want:
            return o
    matches = [o for o in row["offers"] if o["provider"].lower().startswith(want)]
    if provider and not matches:
        known = ", ".join(sorted({o["provider"] for o in row["offers"]}))
        raise HardwareError(f"--provider {provider!r} has no {gpu_name} offer in the price table; known: {known}")
    return matches[0] if matches else None


def offer_label(o: dict) -> str:
    """'RunPod Secure Cloud, H100 SXM 80GB, 2026-09-25; source: ...'."""
    return f"{o['provider']}, {o['sku']}, {o['as_of']}; source: {o['source']}"


def price(gpu_name: str, override: float | None = None, provider: str | None = None) -> tuple[float | None, str]:
    """USD per GPU-hour and where the number came from (the provider, its SKU, date and source)."""
    if override is not None:
        return float(override), "given"
    o = offer(gpu_name, provider)
    if o is None:
        return None, "no price known"
    return float(o["usd_per_gpu_hour"]), offer_label(o)

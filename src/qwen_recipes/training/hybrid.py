"""What hybrid linear-attention (Gated-DeltaNet) and MoE families need from a run, decided without torch.

- Packing. Qwen3.5's Gated-DeltaNet layers keep packed sequences apart only in the varlen kernels of
  flash-linear-attention (`cu_seq_lens`) and causal-conv1d (`seq_idx`). The torch fallback either mixes the rows'
  states (boundaries given only as position_ids: ms-swift#9565, transformers#46093) or refuses TRL's padding-free
  batches. So a recipe that packs padding-free (`packing` with bfd, or `padding_free`) is unpacked (rows padded,
  no leak) when those kernels are missing, and the plan says so.
- Kernels. The plan names the kernels that will run; the torch fallback is several times slower
  (transformers#48718), so on CUDA its absence is a warning.
- MoE. Expert LoRA goes through PEFT `target_parameters`, which refuses LoRA dropout; the router loss is TRL's
  `router_aux_loss_coef` (see `training.model.router_aux_loss_coef`).

Detection is by `importlib.util.find_spec`, as transformers itself imports `fla` / `causal_conv1d` when present.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from qwen_recipes import families
from qwen_recipes.recipe.core import Recipe


def family_of(recipe: Recipe, model_type: str | None = None) -> families.Family | None:
    """The recipe's model family: from `model_type` when known, else offline (tiny name, config.json, table)."""
    if model_type is not None:
        return families.find(model_type)
    from qwen_recipes.cost.models import UnknownModel, recipe_arch

    try:
        return families.find(recipe_arch(recipe, offline=True)[0].model_type)
    except UnknownModel:
        return None


def installed(module: str) -> bool:
    """Whether a Python package is importable (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def cuda_machine() -> bool:
    """Whether this machine has an NVIDIA driver and a CUDA build of torch, without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin or not Path("/proc/driver/nvidia/version").exists():
        return False
    version = Path(spec.origin).with_name("version.py")
    return version.is_file() and "cuda: Optional[str] = None" not in version.read_text()


def asks_padding_free(recipe: Recipe) -> bool:
    """Whether the recipe's batches are padding-free (BFD packing implies it in TRL)."""
    if recipe.task not in ("sft", "cpt"):
        return bool(recipe.get("padding_free"))
    packing = recipe.get("packing") and recipe.get("packing_strategy") in ("bfd", "bfd_split")
    return bool(recipe.get("padding_free") or packing)


@dataclass
class KernelPlan:
    """The linear-attention kernels of a run and whether its rows are packed."""

    family: families.Family | None
    missing: list[str] = field(default_factory=list)  # pip distributions of absent varlen kernels
    unpack: bool = False  # the recipe packs padding-free, but rows will be padded instead
    lines: dict[str, str] = field(default_factory=dict)  # plan entries
    warnings: list[str] = field(default_factory=list)


def kernel_plan(recipe: Recipe, model_type: str | None = None, cuda: bool | None = None) -> KernelPlan:
    """Which Gated-DeltaNet kernels run and whether padding-free packing is kept (needs the varlen kernels)."""
    family = family_of(recipe, model_type)
    plan = KernelPlan(family)
    if family is None or not family.varlen_kernels:
        return plan
    plan.missing = [dist for module, dist in family.varlen_kernels.items() if not installed(module)]
    fla = "flash-linear-attention" not in plan.missing
    conv = "causal-conv1d" not in plan.missing
    plan.lines["linear attention"] = (
        f"Gated-DeltaNet on {'flash-linear-attention' if fla else 'the torch reference (fp32 chunk loop)'}"
        f", short conv on {'causal-conv1d' if conv else 'torch conv1d'}"
    )
    if plan.missing and (cuda_machine() if cuda is None else cuda):
        plan.warnings.append(
            f"{' and '.join(plan.missing)} not installed: the Gated-DeltaNet layers run the torch fallback, several "
            f"times slower (transformers#48718); pip install {' '.join(plan.missing)}"
        )
    if recipe.method == "qlora":
        plan.warnings.append(
            "QLoRA on the Qwen3.5 line is not advised: unsloth measured higher than usual 4-bit quantization "
            "differences, and bitsandbytes' 4-bit weights do not shard under DeepSpeed zero.Init; prefer method: lora"
        )
    if asks_padding_free(recipe):
        plan.unpack = bool(plan.missing)
        plan.lines["packing"] = (
            f"off: {' and '.join(plan.missing)} not installed, and without their varlen kernels packed rows "
            "leak into each other's Gated-DeltaNet state (ms-swift#9565); rows are padded instead "
            f"(pip install {' '.join(plan.missing)} to pack)"
            if plan.unpack
            else "padding-free, sequences kept apart by cu_seq_lens (flash-linear-attention) and seq_idx (causal-conv1d)"
        )
    return plan


def moe_lines(recipe: Recipe, family: families.Family | None) -> dict[str, str]:
    """Plan entries of an MoE family: expert LoRA targets, expert kernels, router loss."""
    if family is None or not family.lora_target_parameters:
        return {}
    from qwen_recipes.training.model import router_aux_loss_coef

    lines = {"expert kernels": recipe.get("experts_implementation") or "transformers' default (grouped_mm, else eager)"}
    if recipe.method in ("lora", "qlora"):
        targets = recipe.get("lora_target_parameters") if recipe.is_set("lora_target_parameters") else None
        targets = family.lora_target_parameters if targets is None else targets
        lines["expert LoRA (target_parameters)"] = ", ".join(targets) or "none: experts stay frozen"
    coef = router_aux_loss_coef(recipe)
    lines["router load-balancing loss"] = (
        "off"
        if coef == 0
        else f"on, x {coef if coef is not None else 'the checkpoint coefficient'}, logged as aux_loss"
    )
    return lines


def problems(recipe: Recipe) -> list[str]:
    """Recipe x family combinations that cannot work (expert LoRA with dropout, router keys on dense models)."""
    family = family_of(recipe)
    if family is None:
        return []
    out: list[str] = []
    moe = bool(family.lora_target_parameters)
    experts = recipe.get("lora_target_parameters") if recipe.is_set("lora_target_parameters") else None
    experts = family.lora_target_parameters if experts is None else experts
    dropout = recipe.get("lora_dropout") or 0.0
    if recipe.method in ("lora", "qlora") and experts and dropout:
        out.append(
            f"{recipe.where('lora_dropout')}: lora_dropout={dropout} with expert LoRA (lora_target_parameters: "
            f"{', '.join(experts)}): PEFT's ParamWrapper cannot apply dropout to fused expert weights; set "
            "lora_dropout: 0.0 (LoRA Without Regret trains without it) or lora_target_parameters: [] to freeze them"
        )
    if not moe:
        for key in ("output_router_logits", "router_aux_loss_coef", "experts_implementation"):
            if recipe.is_set(key) and recipe.get(key) not in (None, False, 0, 0.0):
                out.append(
                    f"{recipe.where(key)}: {key}={recipe.get(key)!r} but {family.model_type} has no experts; remove it"
                )
    elif (
        recipe.get("output_router_logits")
        and recipe.is_set("router_aux_loss_coef")
        and not recipe.get("router_aux_loss_coef")
    ):
        out.append(
            f"{recipe.where('router_aux_loss_coef')}: router_aux_loss_coef=0 with output_router_logits=true: the "
            "router loss would be computed and ignored; set a coefficient (0.001 is the checkpoints') or drop "
            "output_router_logits"
        )
    return out

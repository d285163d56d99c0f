"""Refuse recipe x launcher combinations that cannot work, before any weight or row is loaded.

The launch (sharding, offload, context parallelism) comes from the one launch description, `launch.py`. Each
problem names the key, its value and the fix; the caller raises them once as a RecipeError.
"""

from __future__ import annotations

from qwen_recipes.recipe.core import Recipe
from qwen_recipes.recipe.launch import describe_launch

# 8-bit/paged optimizers (bitsandbytes, torchao) of transformers' `OptimizerNames`: they need their own GPU kernels.
BNB_OPTIMIZER_MARKERS = ("8bit", "paged_", "bnb", "lion_32bit", "ademamix")


def _is_bnb_optimizer(optim: str) -> bool:
    return any(marker in optim for marker in BNB_OPTIMIZER_MARKERS)


def check_launch(recipe: Recipe, env: dict[str, str] | None = None, planned: bool = False) -> list[str]:
    """Every reason this recipe cannot run under its launcher (started, or `planned` from its accelerate config)."""
    problems: list[str] = []
    launch = describe_launch(recipe, env, planned=planned, problems=problems)
    values = recipe.values
    where = recipe.origin.get
    method = recipe.method
    sharding = launch.ds_source if launch.zero_stage == 3 else launch.fsdp_source
    engine = "ZeRO-3" if launch.zero_stage == 3 else "FSDP"

    if launch.ds_source and launch.fsdp:
        problems.append(
            f"{launch.ds_source} and {launch.fsdp_source}: DeepSpeed and FSDP are both on; "
            "pick one accelerate config (configs/accelerate/zero3.yaml or fsdp2.yaml) and drop the other"
        )

    # Sharded 4-bit weights: every rank must hold flat tensors of one dtype (peft#1972, alignment-handbook#42).
    if method == "qlora" and launch.sharded_weights:
        dtype = recipe.get("dtype")
        storage = recipe.get("bnb_4bit_quant_storage")
        if storage and dtype in (None, "auto"):
            problems.append(
                f"{where('bnb_4bit_quant_storage', 'recipe')}: bnb_4bit_quant_storage={storage!r} under {engine} "
                f"({sharding}) needs an explicit matching compute dtype; set dtype: {storage}"
            )
        elif storage and storage != dtype:
            problems.append(
                f"{where('bnb_4bit_quant_storage', 'recipe')}: bnb_4bit_quant_storage={storage!r} differs from "
                f"dtype={dtype!r}; {engine} ({sharding}) shards the 4-bit weights only when they are stored in the "
                f"compute dtype: set bnb_4bit_quant_storage: {dtype} (or remove it, it defaults to dtype)"
            )
        if launch.offloads_params:
            problems.append(
                f"method=qlora with parameter offload ({sharding}): 4-bit bitsandbytes weights cannot be offloaded "
                "to CPU; use configs/accelerate/zero3.yaml (no offload) or method: lora"
            )

    # A device_map pins whole weights to one GPU, which contradicts ZeRO-3/FSDP placing the shards.
    init_kwargs = recipe.get("model_init_kwargs")
    if launch.sharded_weights and isinstance(init_kwargs, dict) and init_kwargs.get("device_map") is not None:
        problems.append(
            f"{where('model_init_kwargs', 'recipe')}: model_init_kwargs.device_map={init_kwargs['device_map']!r} "
            f"under {engine} ({sharding}); remove device_map, the sharding engine places the weights"
        )

    optim = str(values.get("optim") or "")  # only an optimizer the recipe names can contradict the launcher
    offloaded = launch.offload_optimizer or (launch.fsdp_offload and "FSDP offload")
    if optim and _is_bnb_optimizer(optim) and offloaded:
        problems.append(
            f"{where('optim', 'recipe')}: optim={optim!r} (an 8-bit/paged optimizer) with optimizer "
            f"offload to {offloaded} ({launch.ds_source or launch.fsdp_source}): the offloaded step runs on the CPU "
            "(DeepSpeedCPUAdam); use optim: adamw_torch, or drop offload (configs/accelerate/zero3.yaml)"
        )
    elif optim and _is_bnb_optimizer(optim) and launch.ds_has_optimizer:
        problems.append(
            f"{where('optim', 'recipe')}: optim={optim!r} is ignored: the DeepSpeed config ({launch.ds_source}) "
            "defines its own `optimizer`; remove optim from the recipe or the optimizer block from the JSON"
        )

    if launch.fsdp and launch.fsdp_activation_checkpointing and recipe.get("gradient_checkpointing"):
        problems.append(
            f"{where('gradient_checkpointing', 'recipe')}: gradient_checkpointing=true and FSDP's own "
            f"activation_checkpointing ({launch.fsdp_source}) are both on; the Trainer refuses both: "
            "set gradient_checkpointing: false or fsdp_activation_checkpointing: false"
        )

    if launch.cp_size > 1:
        if recipe.get("packing"):
            problems.append(
                f"{where('packing', 'recipe')}: packing=true with context parallelism (cp_size={launch.cp_size}): "
                "CP drops the block-diagonal mask, so packed documents would see each other; set packing: false"
            )
        attn = recipe.get("attn_implementation")
        if attn not in (None, "sdpa"):
            problems.append(
                f"{where('attn_implementation', 'recipe')}: attn_implementation={attn!r} with context parallelism "
                f"(cp_size={launch.cp_size}): torch CP supports only sdpa; set attn_implementation: sdpa"
            )

    from qwen_recipes.training import hybrid  # expert LoRA, router keys on the recipe's family (torch-free)

    problems += hybrid.problems(recipe)
    return problems

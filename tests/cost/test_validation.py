"""The FLOP model against torch's flop counter, and the activation model against what autograd really saves."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qwen_recipes.cost.flops import training_flops
from qwen_recipes.cost.memory import Setup, saved_activation_bytes
from qwen_recipes.cost.models import arch_from_config
from qwen_recipes.testbed import tiny_model

# A small vocabulary so the decoder layers and attention, not the output head, carry most FLOPs and bytes.
SMALL = dict(
    vocab_size=512,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    hidden_size=128,
    intermediate_size=352,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
)


def _model(family: str, method: str, small: bool = True, **kw):
    model = tiny_model(family, **({**SMALL, **kw} if small else kw))
    arch = arch_from_config(model.config.to_dict())
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    return model, arch


@pytest.mark.parametrize("family", ["qwen3", "qwen2_5"])
@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("small", [True, False])
def test_flops_match_torch_flop_counter(family, method, small):
    # Eager attention: its QKᵀ/AV matmuls are visible to the counter (CPU SDPA kernels are not counted).
    model, arch = _model(family, method, small, attn_implementation="eager")
    ids = torch.randint(3, 500, (2, 48))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    est = training_flops(arch, ids.numel(), 48, method, lora_r=8)
    assert est.model == pytest.approx(counter.get_total_flops(), rel=0.05)
    assert est.model == pytest.approx(counter.get_total_flops(), rel=1e-9)  # in fact exact


def test_lora_backward_is_cheaper_and_checkpointing_adds_a_forward():
    _, arch = _model("qwen3", "full")
    full = training_flops(arch, 1000, 256, "full")
    lora = training_flops(arch, 1000, 256, "lora", lora_r=8)
    ckpt = training_flops(arch, 1000, 256, "full", gradient_checkpointing=True)
    assert lora.backward < full.backward
    assert ckpt.recompute == pytest.approx(full.forward - 2 * arch.vocab * arch.hidden * 1000)  # layers, not the head
    assert ckpt.model == full.model and ckpt.total > full.total


def _saved_bytes(model, ids) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(seen.values())


@pytest.mark.parametrize("family", ["qwen3", "qwen2_5"])
@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("ckpt", [False, True])
def test_activation_model_matches_what_autograd_saves(family, method, ckpt):
    model, arch = _model(family, "full")
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    ids = torch.randint(3, 500, (2, 96))
    measured = _saved_bytes(model, ids)
    s = Setup(
        method=method, weight_bytes=4, act_bytes=4, lora_r=8, micro_batch=2, seq_len=96, gradient_checkpointing=ckpt
    )
    # + the fp32 log-softmax the loss keeps (the logits themselves are held by the output, not by autograd).
    est = saved_activation_bytes(arch, s) + 4 * arch.vocab * ids.numel()
    assert est == pytest.approx(measured, rel=0.01)

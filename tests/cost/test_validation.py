"""The FLOP model against torch's flop counter, and the activation model against what autograd really saves."""

from __future__ import annotations

import math

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


# ------------------------------------------------------------------- hybrid (Gated-DeltaNet) and MoE families

HYBRID = dict(num_hidden_layers=4, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16)
HYBRID |= dict(linear_value_head_dim=24)  # 3 Gated-DeltaNet layers + 1 gated attention layer
EXPERTS = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48)


def _conv_backward(grad_out, x, w, bias, stride, padding, dilation, transposed, out_pad, groups, mask, **kw) -> int:
    # torch's counter ignores `groups` in convolution backward (a depthwise conv would cost C times its forward);
    # each requested gradient costs what the forward costs per output element: 2 * (C_in / groups) * kernel.
    per = 2 * w[1] * math.prod(w[2:]) * grad_out[0] * grad_out[1] * math.prod(grad_out[2:])
    return per * (int(mask[0]) + int(mask[1]))


def _solve_triangular(a, b, *args, **kw) -> int:
    return math.prod(b) * a[-1]  # n² FLOPs per right-hand column (the counter does not count solves)


CORRECTED = {
    torch.ops.aten.convolution_backward: _conv_backward,
    torch.ops.aten.linalg_solve_triangular: _solve_triangular,
}


def _layered_model(family: str, method: str, ckpt: bool = False, **kw):
    """A small hybrid / MoE model (eager experts: the counter sees their matmuls), LoRA with the family's targets."""
    from qwen_recipes import families

    if family == "qwen3_moe":
        model = tiny_model(family, **SMALL, **EXPERTS, experts_implementation="eager", **kw)
    else:
        text = {**SMALL, **HYBRID}
        if family == "qwen3_5_moe":
            text = {k: v for k, v in text.items() if k != "intermediate_size"}
            text |= {**EXPERTS, "shared_expert_intermediate_size": 40}
            kw["experts_implementation"] = "eager"
        model = tiny_model(family, text_config=text, **kw)
    arch = arch_from_config(model.config.to_dict())
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        fam = families.get(family)
        lora = LoraConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.0,
            target_modules=list(fam.lora_targets),
            target_parameters=list(fam.lora_target_parameters) or None,
        )
        model = get_peft_model(model, lora)
    model.train()
    return model, arch


LAYERED = ["qwen3_5", "qwen3_5_moe", "qwen3_moe"]


@pytest.mark.parametrize("family", LAYERED)
@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("seq", [48, 100])  # one and two 64-token chunks of the delta rule
def test_hybrid_and_moe_flops_match_the_flop_counter(family, method, seq):
    model, arch = _layered_model(family, method, attn_implementation="eager")
    ids = torch.randint(3, 500, (2, seq))
    with FlopCounterMode(display=False, custom_mapping=CORRECTED) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    est = training_flops(arch, ids.numel(), seq, method, lora_r=8, micro_batch=2)
    assert est.model == pytest.approx(counter.get_total_flops(), rel=1e-9)  # exact


def test_moe_memory_counts_every_expert_and_flops_only_the_active_ones():
    from qwen_recipes.cost.models import builtin

    arch = builtin()["Qwen/Qwen3.5-35B-A3B"]
    moe = arch.moe
    assert (moe.experts, moe.top_k, moe.intermediate, moe.shared_intermediate) == (256, 8, 512, 512)
    assert arch.total_params() / 1e9 == pytest.approx(35.1, abs=0.05)
    per_token = training_flops(arch, 1, 4096, "full").forward
    # Active parameters (~3B): 2 FLOPs each per token, plus attention and the chunked delta rule.
    active = arch.decoder_linear_params() + arch.moe.layers * (moe.top_k * 3 * arch.hidden * moe.intermediate)
    active += arch.moe.layers * moe.experts * arch.hidden + arch.vocab * arch.hidden
    assert 2 * active < per_token < 2 * active * 1.25
    assert active / 1e9 == pytest.approx(3.0, abs=0.4)


@pytest.mark.parametrize("family", LAYERED)
@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("ckpt", [False, True])
def test_hybrid_and_moe_activation_model_matches_what_autograd_saves(family, method, ckpt):
    model, arch = _layered_model(family, method, ckpt)
    ids = torch.randint(3, 500, (2, 100))
    measured = _saved_bytes(model, ids)
    s = Setup(
        method=method,
        weight_bytes=4,
        act_bytes=4,
        lora_r=8,
        micro_batch=2,
        seq_len=100,
        gradient_checkpointing=ckpt,
        linear_attention_kernel="torch",  # the path this CPU runs
    )
    est = saved_activation_bytes(arch, s) + 4 * arch.vocab * ids.numel()
    assert est == pytest.approx(measured, rel=0.005)

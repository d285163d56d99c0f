"""Chat vectors: exact arithmetic per tensor, skips, tied embeddings, shape checks, tokenizer and card carried over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qwen_recipes.outputs.chat_vector import HEAD, ChatVectorError, add_chat_vectors, chat_vector_main
from qwen_recipes.testbed import build_tokenizer, tiny_model

EMBED = "model.embed_tokens.weight"


def save(path: Path, seed: int, chat: bool = False, shard: str | None = None, **overrides) -> Path:
    """A tiny Qwen3 checkpoint on disk (tied embeddings unless overridden)."""
    model = tiny_model("qwen3", seed=seed, **overrides)
    if chat:
        model.generation_config.eos_token_id = [151645, 151643]
        model.generation_config.do_sample = True
        model.generation_config.temperature = 0.7
    model.save_pretrained(path, **({"max_shard_size": shard} if shard else {}))
    build_tokenizer("qwen3", chat=chat).save_pretrained(path)
    return path


def weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor stored in a checkpoint folder (all shards)."""
    out: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        out |= load_file(str(f))
    return out


def effective(w: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A tensor's values; the head of a tied checkpoint is its embedding."""
    return w[name] if name in w else w[EMBED]


@pytest.fixture(scope="module")
def tied(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tied")
    return {
        "base": save(root / "base", seed=0),
        "chat": save(root / "chat", seed=1, chat=True),
        "chat2": save(root / "chat2", seed=2, chat=True),
        "target": save(root / "target", seed=3),
    }


def test_one_vector_is_exact_on_every_tensor_and_keeps_the_tie(tied, tmp_path):
    out = tmp_path / "out"
    rec = add_chat_vectors(str(tied["base"]), [(str(tied["chat"]), 0.8)], str(tied["target"]), out)
    b, c, t = (weights(tied[k]) for k in ("base", "chat", "target"))
    o = weights(out)
    assert set(o) == set(t) and HEAD not in o  # still tied: no head on disk
    for name in t:
        expected = t[name] + 0.8 * (c[name] - b[name])
        assert torch.equal(o[name], expected), name
    # The vector really moved every tensor where chat and base differ (random init leaves the norms at 1 in both).
    moved = {n for n in t if not torch.equal(o[n], t[n])}
    assert moved == {n for n in t if not torch.equal(c[n], b[n])} and EMBED in moved and len(moved) >= 15
    assert rec.merged_tensors == len(t) and rec.skipped_tensors == []
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert torch.equal(model.model.embed_tokens.weight, o[EMBED])
    # The chat model's tokenizer (eos <|im_end|>), template and generation config carry over.
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "<|im_end|>" and tok.chat_template == build_tokenizer("qwen3").chat_template
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [151645, 151643] and gen["temperature"] == 0.7
    card = (out / "README.md").read_text()
    assert "0.8 · (chat #1 − base)" in card and str(tied["chat"]) in card and "skipped): none" in card
    assert json.loads((out / "chat_vector.json").read_text())["chats"] == [{"model": str(tied["chat"]), "ratio": 0.8}]


def test_two_vectors_with_their_own_ratios(tied, tmp_path):
    out = tmp_path / "out"
    argv = ["--base", str(tied["base"]), "--target", str(tied["target"]), "--out", str(out)]
    argv += ["--chat", str(tied["chat"]), "--ratio", "1.0", "--chat", str(tied["chat2"]), "--ratio", "-0.5"]
    assert chat_vector_main(argv) == 0
    b, c1, c2, t, o = (weights(p) for p in (tied["base"], tied["chat"], tied["chat2"], tied["target"], out))
    for name in t:
        assert torch.equal(o[name], t[name] + 1.0 * (c1[name] - b[name]) + (-0.5) * (c2[name] - b[name])), name
    card = (out / "README.md").read_text()
    assert "| chat #2 | `" in card and "| -0.5 |" in card


def test_skip_embeddings_leaves_them_untouched(tied, tmp_path):
    out = tmp_path / "out"
    argv = ["--base", str(tied["base"]), "--chat", str(tied["chat"]), "--target", str(tied["target"])]
    assert chat_vector_main([*argv, "--out", str(out), "--skip-embeddings", "--skip", r"layers\.1\.mlp"]) == 0
    b, c, t, o = (weights(p) for p in (tied["base"], tied["chat"], tied["target"], out))
    kept = {EMBED} | {n for n in t if "layers.1.mlp" in n}
    assert len(kept) == 4
    for name in t:
        if name in kept:
            assert torch.equal(o[name], t[name]), name
        else:
            assert torch.equal(o[name], t[name] + 1.0 * (c[name] - b[name])), name
    record = json.loads((out / "chat_vector.json").read_text())
    assert sorted(record["skipped_tensors"]) == sorted(kept)
    assert EMBED in (out / "README.md").read_text()


def test_tied_target_with_untied_chat_models_is_untied(tmp_path):
    # Base and chat store their own heads (as Qwen2.5-7B does); the CPT target is tied (as a small model).
    base = save(tmp_path / "base", seed=0, tie_word_embeddings=False)
    chat = save(tmp_path / "chat", seed=1, chat=True, tie_word_embeddings=False)
    target = save(tmp_path / "target", seed=3)
    out = tmp_path / "out"
    add_chat_vectors(str(base), [(str(chat), 1.0)], str(target), out)
    b, c, t, o = (weights(p) for p in (base, chat, target, out))
    assert HEAD in b and HEAD not in t and HEAD in o
    assert torch.equal(o[HEAD], t[EMBED] + 1.0 * (c[HEAD] - b[HEAD]))
    assert torch.equal(o[EMBED], t[EMBED] + 1.0 * (c[EMBED] - b[EMBED]))
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert torch.equal(model.lm_head.weight, o[HEAD]) and not torch.equal(model.lm_head.weight, o[EMBED])
    assert "untied" in (out / "README.md").read_text()


def test_untied_sharded_target_with_tied_chat_models(tmp_path):
    # The reverse: a tied base/chat pair's head is its embedding; the target keeps its own head and shards.
    base = save(tmp_path / "base", seed=0)
    chat = save(tmp_path / "chat", seed=1, chat=True)
    target = save(tmp_path / "target", seed=3, shard="20MB", tie_word_embeddings=False)
    out = tmp_path / "out"
    add_chat_vectors(str(base), [(str(chat), 0.5)], str(target), out)
    b, c, t, o = (weights(p) for p in (base, chat, target, out))
    assert set(o) == set(t)
    for name in t:
        assert torch.equal(o[name], t[name] + 0.5 * (effective(c, name) - effective(b, name))), name
    index = json.loads((out / "model.safetensors.index.json").read_text())
    source_index = json.loads((target / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == source_index["weight_map"]  # same shard layout as the target
    assert len(list(out.glob("model-*.safetensors"))) == len(list(target.glob("model-*.safetensors"))) > 1


def test_mismatched_shapes_are_refused_naming_the_tensor(tied, tmp_path, capsys):
    bigger_vocab = save(tmp_path / "target", seed=3, vocab_size=152064)
    with pytest.raises(ChatVectorError, match=r"tensor 'model.embed_tokens.weight': shape \[151936, 64\]") as e:
        add_chat_vectors(str(tied["base"]), [(str(tied["chat"]), 1.0)], str(bigger_vocab), tmp_path / "o")
    assert "--skip-embeddings" in str(e.value)
    assert not (tmp_path / "o").exists()  # checked from the headers before anything is written
    narrow = save(tmp_path / "narrow", seed=4, intermediate_size=96)
    argv = ["--base", str(tied["base"]), "--chat", str(narrow), "--target", str(tied["target"])]
    assert chat_vector_main([*argv, "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "tensor 'model.layers.0.mlp.gate_proj.weight': shape [96, 64] in chat #1" in err
    assert "Traceback" not in err


def test_skip_embeddings_allows_a_changed_vocabulary(tied, tmp_path):
    target = save(tmp_path / "target", seed=3, vocab_size=152064)
    out = tmp_path / "out"
    argv = ["--base", str(tied["base"]), "--chat", str(tied["chat"]), "--target", str(target), "--out", str(out)]
    assert chat_vector_main([*argv, "--skip-embeddings"]) == 0
    o, t = weights(out), weights(target)
    assert torch.equal(o[EMBED], t[EMBED]) and o[EMBED].shape[0] == 152064
    # Vocabularies differ, so the target's tokenizer stays and only the chat template is taken from the chat model.
    assert "vocabulary differs" in (out / "README.md").read_text()


def test_ratio_count_must_match_and_out_must_be_new(tied, tmp_path, capsys):
    argv = ["--base", str(tied["base"]), "--target", str(tied["target"]), "--chat", str(tied["chat"])]
    assert chat_vector_main([*argv, "--chat", str(tied["chat2"]), "--ratio", "0.5", "--out", str(tmp_path)]) == 2
    assert "2 --chat but 1 --ratio" in capsys.readouterr().err
    assert chat_vector_main([*argv, "--out", str(tied["target"])]) == 2
    assert "is one of the input models" in capsys.readouterr().err

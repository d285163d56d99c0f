"""`eval/ja_eval.py harness` with the real lm_eval on a local task, on CPU, with an adapter that trains embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_output
from test_ja_eval import load_ja_eval

pytest.importorskip("lm_eval")
ja_eval = load_ja_eval()

DOCS = [
    {"question": "2 + 2 =", "choices": ["4", "5"], "answer": 0},
    {"question": "The sky is", "choices": ["green", "blue"], "answer": 1},
    {"question": "Tokyo is in", "choices": ["Japan", "Peru"], "answer": 0},
]
TASK = """task: tiny_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (root / "tiny_local.yaml").write_text(TASK.format(data=root / "docs.jsonl"))
    return root


def harness(task_dir: Path, out: Path, *source: str) -> dict:
    argv = ["harness", *source, "--tasks", "tiny_local", "--include-path", str(task_dir), "--dtype", "float32"]
    assert ja_eval.main([*argv, "--batch-size", "1", "--log-samples", "--out", str(out)]) == 0
    samples = json.loads((out / "samples.json").read_text())["tiny_local"]
    return {s["doc_id"]: [float(r[0]) for r in s["resps"]] for s in samples}


def test_harness_on_cpu_with_an_adapter_that_trains_embeddings_and_lm_head(tmp_path, task_dir):
    from qwen_recipes.outputs.merge import merge_adapter

    out = make_output(tmp_path, lora={"modules_to_save": ["embed_tokens", "lm_head"]})
    adapter_scores = harness(task_dir, tmp_path / "eval_adapter", "--adapter", str(out))  # default device: cpu here
    summary = json.loads((tmp_path / "eval_adapter" / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["tasks"]["tiny_local"]["metric"] == "acc,none"
    # The adapter is really applied (make_output perturbs its lm_head/embed_tokens): the log-likelihoods of its merge.
    merged = merge_adapter(out, tmp_path / "merged", dtype="fp32")
    merged_scores = harness(task_dir, tmp_path / "eval_merged", "--model", str(merged), "--device", "cpu")
    assert sorted(adapter_scores) == [0, 1, 2]
    for doc, scores in adapter_scores.items():
        assert scores == pytest.approx(merged_scores[doc], abs=1e-4)
    right = sum(max(range(2), key=lambda i: adapter_scores[d][i]) == DOCS[d]["answer"] for d in adapter_scores)
    assert summary["tasks"]["tiny_local"]["value"] == pytest.approx(right / 3)

"""Data: formats, column mapping, mixtures, skip counting by reason, --strict, over-long rows, the cache."""

from __future__ import annotations

import json

import pytest
from helpers import chat_rows, train, write_jsonl, write_recipe

from qwen_recipes.data.pipeline import DataError, build_dataset
from qwen_recipes.data.templates import training_template
from qwen_recipes.recipe import RecipeError, load_recipe

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
BAD_ROWS = [
    json.dumps(GOOD),
    '{"messages": [{"role": "user", "content": "Hi"}]}',  # no assistant turn
    '{"messages": [{"role": "robot", "content": "Hi"}, {"role": "assistant", "content": "x"}]}',  # unknown role
    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}',  # empty
    '{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}',  # missing content
    '{"messages": [{"role": "user", "content": "Hi"}',  # invalid JSON
    json.dumps(GOOD),
]


def recipe_for(tmp_path, datasets, **values):
    return load_recipe(write_recipe(tmp_path / "r.yaml", datasets=datasets, **values))


def build(tmp_path, tok, datasets, **values):
    recipe = recipe_for(tmp_path, datasets, **values)
    return build_dataset(recipe, tok, training_template("qwen3") if recipe.task == "sft" else None)


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path, qwen3_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", BAD_ROWS)
    with path.open("ab") as fh:
        fh.write(b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "x"}]}\n')
    ds, rep = build(tmp_path, qwen3_tokenizer, [str(path)])
    assert len(ds) == 2 and rep.rows_used == 2 and rep.rows_read == 8
    assert dict(rep.skipped) == {
        "no assistant turn": 1,
        "unknown role": 1,
        "empty content": 1,
        "missing field": 1,
        "invalid JSON": 1,
        "non-UTF-8": 1,
    }
    assert rep.first_skip["invalid JSON"].startswith(f"{path}:6")
    assert rep.first_skip["non-UTF-8"].startswith(f"{path}:8")
    assert "6 skipped" in rep.summary()


def test_strict_turns_skips_into_one_error_naming_file_and_row(tmp_path, qwen3_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", BAD_ROWS)
    with pytest.raises(DataError) as e:
        build(tmp_path, qwen3_tokenizer, [str(path)], strict=True)
    msg = str(e.value)
    assert f"{path}:2: no assistant turn" in msg and f"{path}:3: unknown role" in msg
    assert f"{path}:6: invalid JSON" in msg and "drop --strict" in msg


def test_strict_from_the_command_line_exits_2_without_traceback(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", BAD_ROWS)
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(path)])
    assert train(recipe, "--strict") == 2
    err = capsys.readouterr().err
    assert "data error" in err and f"{path}:2: no assistant turn" in err and "Traceback" not in err


def test_overlong_rows_drop_or_truncate(tmp_path, qwen3_tokenizer):
    long = {"messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "ok"}]}
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, long])
    ds, rep = build(tmp_path, qwen3_tokenizer, [str(path)], max_length=32, overlong="drop")
    assert len(ds) == 1 and rep.skipped == {"longer than max_length": 1}
    ds, rep = build(tmp_path, qwen3_tokenizer, [str(path)], max_length=32, overlong="truncate", seed=1)
    assert len(ds) == 2 and not rep.skipped  # TRL truncates when it packs
    with pytest.raises(DataError, match="tokens > max_length=32"):
        build(tmp_path, qwen3_tokenizer, [str(path)], max_length=32, overlong="drop", strict=True, seed=2)


def test_alpaca_and_sharegpt_columns_become_messages(tmp_path, qwen3_tokenizer):
    from qwen_recipes.data.pipeline import canonical_rows

    alpaca = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"question": "Translate", "context": "猫", "answer": "cat"},
            {"question": "Say hi", "context": "", "answer": "hi"},
        ],
    )
    share = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "S"},
                    {"from": "human", "value": "Q"},
                    {"from": "gpt", "value": "A"},
                ]
            }
        ],
    )
    recipe = recipe_for(
        tmp_path,
        [
            {
                "path": str(alpaca),
                "format": "alpaca",
                "columns": {"instruction": "question", "input": "context", "output": "answer"},
            },
            {"path": str(share)},
        ],
    )
    rows = canonical_rows(recipe)
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Translate\n\n猫"},
        {"role": "assistant", "content": "cat"},
    ]
    assert rows[1]["messages"][0] == {"role": "user", "content": "Say hi"}
    assert rows[2]["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]


def test_mixture_samples_and_weights(tmp_path, qwen3_tokenizer):
    from qwen_recipes.data.pipeline import canonical_rows

    a = write_jsonl(tmp_path / "a.jsonl", chat_rows(10))
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": f"doc {i}"} for i in range(4)])
    recipe = recipe_for(tmp_path, [{"path": str(a), "samples": 3}, {"path": str(a), "weight": 1.5}])
    rows = canonical_rows(recipe)
    assert len(rows) == 3 + 15
    whole = [{"messages": r["messages"]} for r in chat_rows(10)]
    assert rows[3:13] == whole  # weight 1.5 = one whole copy in order, then 5 rows sampled without repeats
    assert all(r in whole for r in rows[13:]) and len({json.dumps(r) for r in rows[13:]}) == 5
    recipe = recipe_for(tmp_path, [{"path": str(b), "weight": 0.5}], task="cpt", base=[])
    assert len(canonical_rows(recipe)) == 2


def test_parquet_csv_and_folders_load(tmp_path, qwen3_tokenizer):
    from datasets import Dataset

    from qwen_recipes.data.pipeline import canonical_rows

    folder = tmp_path / "texts"
    folder.mkdir()
    Dataset.from_list([{"text": "alpha"}, {"text": "beta"}]).to_parquet(str(folder / "a.parquet"))
    (folder / "b.csv").write_text("text\ngamma\n")
    write_jsonl(folder / "c.jsonl", [{"text": "delta"}])
    recipe = recipe_for(tmp_path, [str(folder)], task="cpt", base=[])
    assert [r["text"] for r in canonical_rows(recipe)] == ["alpha", "beta", "gamma", "delta"]


def test_cpt_rows_end_with_endoftext_and_train_every_token(tmp_path, qwen3_tokenizer):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "Hello world"}])
    ds, rep = build(tmp_path, qwen3_tokenizer, [str(path)], task="cpt", base=[])
    assert ds[0]["input_ids"] == [9707, 1879, 151643]
    assert "assistant_masks" not in ds.column_names and rep.loss_tokens_per_epoch == rep.tokens_per_epoch == 3


def test_sft_rows_carry_token_exact_masks(tmp_path, qwen3_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    ds, _ = build(tmp_path, qwen3_tokenizer, [str(path)])
    ids, mask = ds[0]["input_ids"], ds[0]["assistant_masks"]
    assert qwen3_tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "Hello<|im_end|>"


def test_second_build_hits_the_cache_and_a_change_misses_it(tmp_path, qwen3_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", chat_rows(4))
    ds1, rep1 = build(tmp_path, qwen3_tokenizer, [str(path)])
    ds2, rep2 = build(tmp_path, qwen3_tokenizer, [str(path)])
    assert rep1.cache.startswith("written") and rep2.cache.startswith("hit")
    assert ds1["input_ids"] == ds2["input_ids"] and rep2.rows_used == 4
    _, rep3 = build(tmp_path, qwen3_tokenizer, [str(path)], max_length=48)
    assert rep3.cache.startswith("written")


def test_unknown_preprocess_lists_the_known_ones(tmp_path, qwen3_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    with pytest.raises(
        RecipeError,
        match=r"preprocess='nope' is not a registered preprocessor; known: countdown, gsm8k, math, pixmo_cap, "
        r"pixmo_points, s1k, s1k_1\.1",
    ):
        build(tmp_path, qwen3_tokenizer, [{"path": str(path), "preprocess": "nope"}])


def test_missing_local_file_says_what_to_check(tmp_path, qwen3_tokenizer):
    with pytest.raises(
        DataError,
        match=rf"r.yaml:\d+: datasets\[0\].path='no/such/file.jsonl': no such file or folder: {tmp_path}/no/such/file.jsonl",
    ):
        build(tmp_path, qwen3_tokenizer, ["no/such/file.jsonl"])
    with pytest.raises(DataError, match="neither a local file/folder nor loadable from the Hub"):  # a Hub id, offline
        build(tmp_path, qwen3_tokenizer, ["no-such-org/no-such-dataset"])

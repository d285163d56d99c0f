"""Mixtures where nothing goes silently: empty and short sources, the realised mix, numbers in CSV answers,
file:line for drops after tokenization with per-source counts that add up, exact duplicates
(issue 17 #2; issue 16 #8, #9, #10)."""

from __future__ import annotations

import json

import pytest
from helpers import chat_rows, write_jsonl, write_recipe

from qwen_recipes.data.pipeline import DataError, build_dataset, canonical_rows
from qwen_recipes.data.report import DataReport
from qwen_recipes.data.templates import training_template
from qwen_recipes.recipe import load_recipe

ALPACA = [{"question": f"What is {i} + {i}?", "answer": f"{2 * i}"} for i in range(6)]


def recipe_for(tmp_path, datasets, **values):
    return load_recipe(write_recipe(tmp_path / "r.yaml", datasets=datasets, **values))


def test_a_source_with_no_usable_rows_is_an_error_naming_its_mapping_and_columns(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", chat_rows(10))
    qa = write_jsonl(tmp_path / "qa.jsonl", ALPACA)
    mapping = {"instruction": "question", "output": "anwser"}  # misspelt: the source has `answer`
    recipe = recipe_for(tmp_path, [str(good), {"path": str(qa), "format": "alpaca", "columns": mapping, "samples": 4}])
    with pytest.raises(DataError) as e:
        canonical_rows(recipe)
    msg = str(e.value)
    assert msg.startswith("datasets[1] qa.jsonl: no usable rows (6 read, 6 skipped; first: ")
    assert f"{qa}:1: missing field" in msg
    assert "columns: {'instruction': 'question', 'output': 'anwser'} names 'anwser' (did you mean 'answer'?)" in msg
    assert "the source's columns are ['answer', 'question']" in msg


def test_a_source_shorter_than_its_samples_is_an_error(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", chat_rows(4))
    with pytest.raises(DataError) as e:
        canonical_rows(recipe_for(tmp_path, [{"path": str(a), "samples": 10}]))
    assert str(e.value) == (
        "datasets[0] a.jsonl: samples: 10 but the source has only 4 usable rows (4 read, 0 skipped); lower samples "
        "to at most 4, or repeat rows with weight: 2.50 instead"
    )


def test_the_realised_mix_is_printed_and_reported_next_to_the_request(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", chat_rows(10))
    b = write_jsonl(tmp_path / "b.jsonl", [*chat_rows(4)[:2], '{"messages": []}'])  # one bad row
    recipe = recipe_for(tmp_path, [{"path": str(a), "samples": 3}, {"path": str(b), "weight": 2.5}])
    report = DataReport()
    rows = canonical_rows(recipe, report=report)
    assert len(rows) == 3 + 5
    assert [(s["source"], s["requested"], s["read"], s["skipped"], s["usable"], s["used"], s["share"])
            for s in report.by_source] == [
        ("datasets[0] a.jsonl", "samples: 3", 10, 0, 10, 3, 0.375),
        ("datasets[1] b.jsonl", "weight: 2.5", 3, 1, 2, 5, 0.625),
    ]  # fmt: skip
    assert "mix: datasets[0] a.jsonl 3 rows = 37.5% (requested: samples: 3, 10 usable); datasets[1] b.jsonl 5 rows" \
           " = 62.5% (requested: weight: 2.5, 2 usable)" in report.summary()  # fmt: skip
    assert report.to_dict()["by_source"][1]["share"] == 0.625


def test_numbers_in_csv_answers_are_trained_as_text_and_counted(tmp_path, qwen3_tokenizer):
    csv = tmp_path / "qa.csv"
    csv.write_text("instruction,input,output\nWhat is 2 + 2?,,4\nHalf of 7?,0,3.5\nName a cat,,Tama\n")
    parquet = tmp_path / "qa.parquet"
    from datasets import Dataset

    Dataset.from_list([{"instruction": "Six times seven?", "output": 42}]).to_parquet(str(parquet))
    recipe = recipe_for(tmp_path, [{"path": str(csv), "format": "alpaca"}, {"path": str(parquet), "format": "alpaca"}])
    ds, report = build_dataset(recipe, qwen3_tokenizer, training_template("qwen3"))
    assert report.rows_used == len(ds) == 4 and not report.skipped
    rows = canonical_rows(recipe)
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "4"}  # the CSV's text, as written
    assert rows[1]["messages"][0]["content"] == "Half of 7?\n\n0" and rows[1]["messages"][1]["content"] == "3.5"
    assert rows[3]["messages"][1]["content"] == "42"
    assert dict(report.converted) == {"output: int -> text": 1}  # Parquet kept its int; CSV cells are text already
    assert "numbers/booleans in text fields trained as their text: output: int -> text (1)" in report.summary()
    assert report.to_dict()["converted"] == {"output: int -> text": 1}


def test_json_numbers_in_messages_are_converted_and_counted(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": 4}]}]
    report = DataReport()
    got = canonical_rows(recipe_for(tmp_path, [str(write_jsonl(tmp_path / "n.jsonl", rows))]), report=report)
    assert got[0]["messages"][1]["content"] == "4" and dict(report.converted) == {"messages[].content: int -> text": 1}


def test_drops_after_tokenization_name_file_and_line_and_counts_add_up(tmp_path, qwen3_tokenizer):
    long = {"messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "ok"}]}
    a = write_jsonl(tmp_path / "a.jsonl", [*chat_rows(3), long])
    b = write_jsonl(tmp_path / "b.jsonl", [long, *chat_rows(2), "not json"])
    datasets = [str(a), str(b)]
    with pytest.raises(DataError) as e:
        build_dataset(recipe_for(tmp_path, datasets, max_length=48, overlong="drop", strict=True), qwen3_tokenizer,
                      training_template("qwen3"))  # fmt: skip
    assert f"{b}:4: invalid JSON" in str(e.value)
    ds, report = build_dataset(recipe_for(tmp_path, datasets, max_length=48, overlong="drop"), qwen3_tokenizer,
                               training_template("qwen3"))  # fmt: skip
    assert report.first_skip["longer than max_length"].startswith(f"{a}:4: ")
    assert [(s["read"], s["skipped"], s["used"]) for s in report.by_source] == [(4, 1, 3), (4, 2, 2)]
    assert sum(s["used"] for s in report.by_source) == report.rows_used == len(ds) == 5
    assert sum(s["skipped"] for s in report.by_source) == sum(report.skipped.values()) == 3
    assert sum(s["read"] for s in report.by_source) == report.rows_read == 8
    strict = recipe_for(tmp_path, [str(a)], max_length=48, overlong="drop", strict=True, seed=3)
    with pytest.raises(DataError) as e:
        build_dataset(strict, qwen3_tokenizer, training_template("qwen3"))
    assert f"{a}:4: " in str(e.value) and "tokens > max_length=48" in str(e.value) and "row 4" not in str(e.value)


def test_exact_duplicates_are_counted_and_removed_with_dedup(tmp_path):
    rows = chat_rows(3)
    a = write_jsonl(tmp_path / "a.jsonl", [*rows, rows[0], rows[0]])
    b = write_jsonl(tmp_path / "b.jsonl", [rows[1], chat_rows(5)[4]])
    report = DataReport()
    assert len(canonical_rows(recipe_for(tmp_path, [str(a), str(b)]), report=report)) == 7
    assert report.duplicates == 3 and not report.skipped
    assert "3 exact duplicate rows kept (set dedup: true to remove them)" in report.summary()
    report = DataReport()
    got = canonical_rows(recipe_for(tmp_path, [str(a), str(b)], dedup=True), report=report)
    assert len(got) == 4 and len({json.dumps(r) for r in got}) == 4
    assert report.skipped == {"duplicate (dedup: true)": 3}
    assert report.first_skip["duplicate (dedup: true)"].startswith(f"{a}:4: ")
    assert [(s["skipped"], s["used"]) for s in report.by_source] == [(2, 3), (1, 1)]
    assert "3 exact duplicate rows removed (dedup: true)" in report.summary()

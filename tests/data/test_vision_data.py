"""Vision-language rows: every accepted shape gives the same row, bad rows are named and counted, lengths are exact."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT, write_jsonl, write_recipe

from qwen_recipes.data.sources import DataError

SAMPLES = ROOT / "data" / "samples" / "vision"


def _image(path, size=(56, 56), color=(200, 30, 30)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


BASES = [str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "lora", "vision_sft")]


def _recipe(tmp_path, data, **values):
    from qwen_recipes.recipe import load_recipe

    values = {"base": BASES, "model_name_or_path": "tiny:qwen2_5_vl", "datasets": [str(d) for d in data], **values}
    return load_recipe(write_recipe(tmp_path / "r.yaml", **values))


@pytest.fixture(scope="module")
def processors():
    """The offline test-bed processors of both Qwen VL families."""
    from qwen_recipes import families
    from qwen_recipes.testbed import build_tokenizer
    from qwen_recipes.training.vision import tiny_processor

    return {name: tiny_processor(families.get(name), build_tokenizer(name)) for name in ("qwen2_5_vl", "qwen3_vl")}


def _build(recipe, processor):
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision_dataset import build_vision_dataset

    template = resolve_training_template(processor, recipe_family(recipe).model_type)
    return build_vision_dataset(recipe, processor, template)


def recipe_family(recipe):
    from qwen_recipes.training.vision import recipe_family as family

    return family(recipe)


def test_parts_llava_sharegpt_and_llamafactory_json_give_the_same_rows(tmp_path, processors):
    _image(tmp_path / "data" / "img" / "a.png")
    _image(tmp_path / "data" / "img" / "b.png", (84, 56))
    q1, q2 = "What is it?", "And this?"
    parts = {"messages": [
        {"role": "user", "content": [{"type": "image", "image": "img/a.png"}, {"type": "text", "text": q1}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Red."}]},
        {"role": "user", "content": [{"type": "text", "text": q2}, {"type": "image"}]},
        {"role": "assistant", "content": "Wide."},
    ], "images": ["img/b.png"]}  # fmt: skip
    llava = {"messages": [{"role": "user", "content": f"<image>{q1}"}, {"role": "assistant", "content": "Red."},
                          {"role": "user", "content": f"{q2}<image>"}, {"role": "assistant", "content": "Wide."}],
             "images": ["img/a.png", "img/b.png"]}  # fmt: skip
    sharegpt = {"conversations": [{"from": "human", "value": f"<image>{q1}"}, {"from": "gpt", "value": "Red."},
                                  {"from": "human", "value": f"{q2}<image>"}, {"from": "gpt", "value": "Wide."}],
                "pics": ["img/a.png", "img/b.png"]}  # fmt: skip
    files = [
        write_jsonl(tmp_path / "data" / "parts.jsonl", [parts]),
        write_jsonl(tmp_path / "data" / "llava.jsonl", [llava]),
    ]
    (tmp_path / "data" / "mllm_demo.json").write_text(json.dumps([llava]))  # LLaMA-Factory: a JSON array
    write_jsonl(tmp_path / "data" / "sharegpt.jsonl", [sharegpt])
    recipe = _recipe(tmp_path, [*files, tmp_path / "data" / "mllm_demo.json"])
    spec = recipe.values["datasets"]
    spec.append(
        {"path": str(tmp_path / "data" / "sharegpt.jsonl"), "format": "sharegpt", "columns": {"images": "pics"}}
    )
    recipe = _recipe(tmp_path, [], datasets=spec)
    ds, report = _build(recipe, processors["qwen2_5_vl"])
    assert report.rows_read == report.rows_used == 4 and not report.skipped
    rows = ds.to_list()
    assert all(r["messages"] == rows[0]["messages"] for r in rows)
    assert all(
        r["images"] == [str((tmp_path / "data" / "img" / n).resolve()) for n in ("a.png", "b.png")] for r in rows
    )
    assert rows[0]["messages"][2]["content"] == [{"type": "text", "text": q2}, {"type": "image", "text": None}]
    assert ds.features["images"].feature.dtype == "string"  # lazy: paths, decoded batch by batch in the collator


def test_images_without_placeholders_go_before_the_first_user_text_as_trl_does(tmp_path, processors):
    _image(tmp_path / "a.png")
    data = write_jsonl(tmp_path / "d.jsonl", [{"images": ["a.png"], "messages": [
        {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}])  # fmt: skip
    ds, _ = _build(_recipe(tmp_path, [data]), processors["qwen2_5_vl"])
    assert ds[0]["messages"][0]["content"] == [{"type": "image", "text": None}, {"type": "text", "text": "Q"}]


def test_bad_rows_are_named_counted_and_add_up(tmp_path, processors):
    good = _image(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    big = _image(tmp_path / "big.png", (28 * 8, 28 * 8))  # 16 vision tokens at the tiny processor's cap
    ok = {
        "messages": [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}],
        "images": ["good.png"],
    }
    rows = [
        ok,
        {**ok, "images": ["missing.png"]},
        {**ok, "images": ["broken.png"]},
        {**ok, "images": ["good.png", "good.png"]},  # fewer placeholders than images
        {**ok, "messages": [{"role": "user", "content": "<image><image>Q"}, {"role": "assistant", "content": "A"}]},
        {**ok, "images": ["big.png"]},  # longer than max_length once its vision tokens are counted
        "{not json",
        ok,
    ]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    recipe = _recipe(tmp_path, [data], max_length=40)
    ds, report = _build(recipe, processors["qwen2_5_vl"])
    assert report.rows_read == 8 and report.rows_used == len(ds) == 2
    assert report.rows_used + sum(report.skipped.values()) == report.rows_read
    assert dict(report.skipped) == {
        "missing image": 1,
        "unreadable image": 1,
        "image placeholders mismatch": 2,
        "longer than max_length": 1,
        "invalid JSON": 1,
    }
    where = report.first_skip
    assert where["missing image"].startswith(f"{data}:2: 'missing.png'")
    assert where["unreadable image"].startswith(f"{data}:3: ")
    assert where["image placeholders mismatch"].startswith(f"{data}:4: 1 <image> placeholder(s) but 2 image(s)")
    assert where["longer than max_length"].startswith(f"{data}:6: ")
    assert "vision" in where["longer than max_length"] and "never cut" in where["longer than max_length"]
    assert str(good) != str(big)
    with pytest.raises(DataError, match=rf"{data}:2: missing image") as err:
        _build(_recipe(tmp_path, [data], max_length=40, strict=True), processors["qwen2_5_vl"])
    assert f"{data}:5: image placeholders mismatch" in str(err.value)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_measured_lengths_equal_what_the_processor_produces(tmp_path, processors, family):
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision_dataset import exact_length, measure

    sizes = [(56, 56), (84, 56), (30, 200), (250, 140), (17, 23)]
    rows = []
    for i, (w, h) in enumerate(sizes):
        _image(tmp_path / f"{i}.png", (w, h))
        rows.append({"messages": [{"role": "user", "content": f"<image>Q{i}" + ("<image>" if i % 2 else "")},
                                  {"role": "assistant", "content": "An answer."}],
                     "images": [f"{i}.png"] * (1 + i % 2)})  # fmt: skip
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    recipe = _recipe(tmp_path, [data], model_name_or_path=f"tiny:{family}")
    processor = processors[family]
    ds, report = _build(recipe, processor)
    template = resolve_training_template(processor, family)
    from qwen_recipes.data.pipeline import canonical_rows
    from qwen_recipes.data.vision import vision_canonical

    canon = canonical_rows(recipe, canonical=lambda r, f, s, w: vision_canonical(r, f, s, w, tmp_path / "media"))
    fast = [n for n, _, _ in measure(canon, processor, template)]
    assert fast == [exact_length(r, processor, template) for r in ds.to_list()]
    assert report.tokens_per_epoch == sum(fast)


def test_video_rows_fail_with_the_missing_package_named(tmp_path, processors):
    pytest.importorskip("PIL")
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        pytest.skip("torchvision is installed: the video processor exists here")
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 16)
    data = write_jsonl(tmp_path / "d.jsonl", [{"messages": [
        {"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": "What happens?"}]},
        {"role": "assistant", "content": "Nothing."}]}])  # fmt: skip
    from qwen_recipes.data.vision_dataset import VideoBackendError

    with pytest.raises(VideoBackendError, match=rf"{data}:1: video rows need .*'torchvision'.*'av'"):
        _build(_recipe(tmp_path, [data]), processors["qwen2_5_vl"])


def test_shipped_samples_read_without_a_skip(tmp_path, processors):
    for name in ("shapes_sft", "captions_llava", "points_counts"):
        ds, report = _build(_recipe(tmp_path, [SAMPLES / f"{name}.jsonl"], max_length=512), processors["qwen3_vl"])
        assert report.rows_used == report.rows_read == len(ds) > 0 and not report.skipped, name


def test_an_overlong_row_is_dropped_never_cut_inside_its_vision_tokens(tmp_path, processors):
    """Between the text length and text + vision tokens: TRL-style truncation would cut the image span
    ("Image features and image tokens do not match"); the row is dropped, and the collator never truncates."""
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision_dataset import VisionCollator, measure

    _image(tmp_path / "a.png", (28 * 4, 28 * 4))  # 4x4 tokens of 28x28 pixels
    row = {
        "messages": [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}],
        "images": ["a.png"],
    }
    data = write_jsonl(tmp_path / "d.jsonl", [row])
    processor = processors["qwen2_5_vl"]
    recipe = _recipe(tmp_path, [data], max_length=10_000)
    ds, _ = _build(recipe, processor)
    template = resolve_training_template(processor, "qwen2_5_vl")
    total, _, vision = measure([{**ds[0], "_image_sizes": [(112, 112)]}], processor, template)[0]
    assert vision == 16
    with pytest.raises(DataError, match="no usable rows"):  # max_length falls inside the vision span: dropped
        _build(_recipe(tmp_path, [data], max_length=total - 2), processor)
    batch = VisionCollator(processor, template, [processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")])([ds[0]])
    assert batch["input_ids"].shape[1] == total and int((batch["input_ids"] == 151655).sum()) == vision


def test_pixmo_rows_become_pointing_counting_and_caption_turns():
    from qwen_recipes.data.prepare.pixmo import pixmo_cap_row, pixmo_points_row

    row = {"image_url": "https://x/1.jpg", "label": "cats", "points": [{"x": 55.1, "y": 60.3}, {"x": 10.5, "y": 20.0}]}
    pointing = pixmo_points_row(row)
    assert pointing["messages"][0]["content"] == "<image>Point to cats."
    assert (
        pointing["messages"][1]["content"] == '<points x1="10.5" y1="20.0" x2="55.1" y2="60.3" alt="cats">cats</points>'
    )
    counting = pixmo_points_row(row, task="counting")["messages"][1]["content"]
    assert counting.startswith("Counting the <points x1=") and counting.endswith("shows a total of 2.")
    assert pixmo_points_row({**row, "points": []})["messages"][1]["content"] == "There are none."
    cap = pixmo_cap_row({"image_url": "https://x/1.jpg", "caption": "Two cats."})
    assert cap == {"messages": [{"role": "user", "content": "<image>Describe this image in detail."},
                                {"role": "assistant", "content": "Two cats."}], "images": ["https://x/1.jpg"]}  # fmt: skip

"""CPT text preparation: token-ratio mixtures within 1%, exact-duplicate counts, Japanese characters per token."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers import write_jsonl

from qwen_recipes.data.prepare.cpt import (
    CptDataError,
    Doc,
    TextSource,
    cpt_main,
    japanese_chars,
    japanese_share,
    mix_by_tokens,
    normalise,
    prepare_cpt,
)

ROOT = Path(__file__).resolve().parents[2]
JA = ROOT / "data/samples/ja_cpt/ja_articles.jsonl"
EN = ROOT / "data/samples/ja_cpt/en_articles.jsonl"


def test_japanese_character_counts():
    assert japanese_chars("日本語のテキスト、abc。") == 8  # kanji, hiragana, katakana; not 、。 or Latin
    assert japanese_chars("ｶﾀｶﾅ々") == 5  # half-width katakana and the iteration mark
    assert japanese_share("日本 ab") == pytest.approx(0.5)
    assert japanese_share("   ") == 0.0


def test_normalisation_for_duplicates():
    assert normalise("  １９６４年\n  東京 ") == normalise("1964年 東京")
    assert normalise("a b") != normalise("ab")


def test_fixture_dedupe_counts_and_japanese_chars_per_token(qwen3_tokenizer):
    sources = [TextSource("ja", str(JA)), TextSource("en", str(EN))]
    docs, report = prepare_cpt(sources, {"ja": 1, "en": 1}, qwen3_tokenizer)
    ja, en = report["sources"]["ja"], report["sources"]["en"]
    # ja: 25 rows = 22 unique + 1 exact copy + 1 copy differing in surrounding whitespace + 1 empty text.
    assert (ja["rows_read"], ja["duplicates"], ja["skipped"], ja["docs_available"]) == (
        25,
        2,
        {"empty or unreadable": 1},
        22,
    )
    # en: 12 rows = 10 unique + 1 exact copy + 1 copy with full-width digits and extra spaces (NFKC-equal).
    assert (en["rows_read"], en["duplicates"], en["docs_available"]) == (12, 2, 10)
    # Tokens are counted with the real tokenizer, +1 per document for the end-of-document token.
    texts = [json.loads(line)["text"] for line in JA.read_text().splitlines()]
    unique = list(dict.fromkeys(normalise(t) for t in texts if t.strip()))
    assert len(unique) == 22
    ja_docs = [d for d in docs if d.source == "ja"]
    text_tokens = sum(len(qwen3_tokenizer(d.text, add_special_tokens=False)["input_ids"]) for d in ja_docs)
    assert ja["tokens_selected"] == text_tokens + len(ja_docs)
    assert ja["japanese_chars"] == sum(japanese_chars(d.text) for d in ja_docs)
    assert ja["japanese_chars_per_token"] == pytest.approx(ja["japanese_chars"] / text_tokens)
    # Qwen's BPE gives roughly 1-2 Japanese characters per token (about 1.48 reported); English text has none.
    assert 1.0 < ja["japanese_chars_per_token"] < 2.2, ja["japanese_chars_per_token"]
    assert en["japanese_chars"] == 0 and en["chars_per_token"] > 3.0
    # 1:1 by tokens: English is the scarce source and is taken whole.
    assert en["docs_selected"] == 10 and abs(ja["share"] - 0.5) <= 0.01


def synthetic_pool(label: str, n: int, seed: int) -> list[Doc]:
    rng = random.Random(seed)
    return [Doc(text=f"{label}{i}", source=label, tokens=rng.randint(20, 400)) for i in range(n)]


@pytest.mark.parametrize(("ja", "en", "total"), [(7, 3, 50_000), (7, 3, None), (9, 1, 20_000), (1, 1, None)])
def test_mixture_hits_the_token_ratio_within_one_percent(ja, en, total):
    pools = {"ja": synthetic_pool("ja", 600, 1), "en": synthetic_pool("en", 400, 2)}
    chosen = mix_by_tokens(pools, {"ja": ja, "en": en}, total, seed=0)
    tokens = {k: sum(d.tokens for d in v) for k, v in chosen.items()}
    share = tokens["ja"] / (tokens["ja"] + tokens["en"])
    assert abs(share - ja / (ja + en)) <= 0.01, (share, tokens)
    if total:
        assert total * 0.99 <= sum(tokens.values()) <= total
    else:  # the scarcest source is used up (to within one document)
        scarce = min(("ja", "en"), key=lambda k: sum(d.tokens for d in pools[k]) / {"ja": ja, "en": en}[k])
        assert sum(d.tokens for d in pools[scarce]) - tokens[scarce] < 400


def test_not_enough_text_names_the_source():
    pools = {"ja": synthetic_pool("ja", 10, 1), "en": synthetic_pool("en", 400, 2)}
    with pytest.raises(CptDataError, match=r"ja: has [\d,]+ tokens, needs 35,000"):
        mix_by_tokens(pools, {"ja": 7, "en": 3}, 50_000)


def test_cli_writes_mixture_and_report(tmp_path, qwen3_tokenizer, capsys):
    tok_dir = tmp_path / "tok"
    qwen3_tokenizer.save_pretrained(tok_dir)
    out = tmp_path / "mix.jsonl"
    argv = ["--source", f"ja={JA}", "--source", f"en={EN}", "--ratio", "ja=7,en=3", "--tokenizer", str(tok_dir)]
    assert cpt_main([*argv, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert len(rows) == report["documents"] and {r["source"] for r in rows} == {"ja", "en"}
    assert abs(report["sources"]["ja"]["share"] - 0.7) <= 0.01
    assert len({normalise(r["text"]) for r in rows}) == len(rows)  # no duplicates left
    printed = capsys.readouterr().out
    assert "ja/tok" in printed and "total:" in printed


def test_cli_errors_are_one_line(tmp_path, capsys):
    data = write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}])
    assert cpt_main(["--source", f"ja={data}", "--ratio", "ja=7,en=3", "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "must name the same labels" in err and "Traceback" not in err
    assert cpt_main(["--source", f"ja={data},colum=body", "--ratio", "ja=1", "--out", str(tmp_path / "o")]) == 2
    assert "unknown option 'colum'" in capsys.readouterr().err


def test_unreachable_source_names_its_label_and_what_to_check():
    from qwen_recipes.data.prepare.cpt import TextSource, iter_texts

    with pytest.raises(CptDataError, match=r"source ja: dataset 'nobody/nothing' is neither a local file/folder"):
        list(iter_texts(TextSource.parse("ja=nobody/nothing")))


def test_the_help_example_runs_offline_with_the_family_tokenizer_convention(tmp_path, monkeypatch, capsys):
    """`prepare cpt --help` shows a command that works offline, from the repository root (issue 17 #11)."""
    import shlex

    from qwen_recipes.data.prepare import cpt

    example = next(block for block in cpt.__doc__.split("\n\n") if "qwen-recipes prepare cpt" in block)
    argv = shlex.split(example.replace("\\\n", " "))[3:]  # after `qwen-recipes prepare cpt`
    argv[argv.index("--out") + 1] = str(tmp_path / "mix.jsonl")
    monkeypatch.chdir(ROOT)
    assert cpt_main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "mix.report.json").read_text())["tokenizer"] == "qwen2_5"
    # The same --tokenizer convention as `prepare s1k`: a family name is the offline tokenizer.
    assert cpt_main([*argv, "--tokenizer", "qwen2_5"]) == 0  # what the issue saw refused
    with pytest.raises(SystemExit):
        cpt_main(["--help"])
    assert "a model family (qwen2_5, qwen3, ...: the offline tokenizer" in " ".join(capsys.readouterr().out.split())

"""`qwen-recipes push` against an in-process fake of the Hub's HTTP API (no network)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from helpers import ROOT, STANDIN, copy_with_cache, standin_output

from qwen_recipes.outputs import hub
from qwen_recipes.outputs.card import check_metadata

TOKEN = "hf_FakeTokenForTests0123456789abcdef"
ENDPOINT = "https://hub.test"
OID = "c0ffee" + "0" * 34
ADAPTER_UPLOAD = {
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "chat_template.jinja",
    "recipe.resolved.yaml",
    "run_report.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


class FakeHub:
    """Answers the endpoints `create_repo`/`create_branch`/`upload_folder` use, and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.lfs: dict[str, bytes] = {}
        self.commits: list[dict[str, Any]] = []
        self.fail_commits = 0  # answer this many commits with HTTP 500
        self.fail_status = 500

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        path, body = request.url.path, request.content
        if path == "/api/repos/create":
            repo = json.loads(body)
            return httpx2.Response(200, json={"url": f"{ENDPOINT}/{repo['organization']}/{repo['name']}"})
        if "/branch/" in path:
            return httpx2.Response(200, json={})
        if path == "/api/validate-yaml":
            meta = yaml.safe_load(json.loads(body)["content"].split("---\n")[1])
            base = str(meta.get("base_model", ""))
            if base.startswith(("/", ".", "~")) or "/" not in base:  # what the real Hub rejects (peft PR #2124)
                return httpx2.Response(400, json={"errors": [{"message": f'"base_model" {base} is not a model id'}]})
            return httpx2.Response(200, json={"warnings": []})
        if "/preupload/" in path:
            files = json.loads(body)["files"]
            modes = [
                {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".safetensors") else "regular",
                 "shouldIgnore": False}
                for f in files
            ]  # fmt: skip
            return httpx2.Response(200, json={"files": modes})
        if path.endswith(".git/info/lfs/objects/batch"):
            objects = json.loads(body)["objects"]
            actions = [
                {"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": f"{ENDPOINT}/lfs/{o['oid']}"}}}
                for o in objects
            ]
            return httpx2.Response(200, json={"objects": actions})
        if path.startswith("/lfs/"):
            self.lfs[path.rsplit("/", 1)[1]] = body
            return httpx2.Response(200)
        if "/commit/" in path:
            if self.fail_commits:
                self.fail_commits -= 1
                return httpx2.Response(self.fail_status, json={"error": "Internal Error"})
            files: dict[str, bytes] = {}
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "lfsFile":
                    files[item["value"]["path"]] = self.lfs[item["value"]["oid"]]
            self.commits.append({"revision": path.rsplit("/", 1)[1], "files": files})
            repo = path.split("/api/models/")[1].split("/commit/")[0]
            return httpx2.Response(200, json={"commitUrl": f"{ENDPOINT}/{repo}/commit/{OID}", "commitOid": OID})
        return httpx2.Response(404, json={"error": f"fake hub: no route {path}"})

    def posts(self, fragment: str) -> list[httpx2.Request]:
        return [r for r in self.requests if r.method == "POST" and fragment in r.url.path]


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Route huggingface_hub to FakeHub. Offline mode and the endpoint are read once at import into
    `huggingface_hub.constants`, so they are patched there (the env alone would not change them)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http, set_client_factory

    fake = FakeHub()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # plain preupload/LFS/commit, no Xet CAS
    monkeypatch.setattr(constants, "ENDPOINT", ENDPOINT)
    monkeypatch.setattr(hub.time, "sleep", lambda s: None)
    set_client_factory(
        lambda: httpx2.Client(
            transport=httpx2.MockTransport(fake), event_hooks={"request": [_http.hf_request_event_hook]}
        )
    )
    yield fake
    set_client_factory(_http.default_client_factory)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standin_output(tmp_path_factory.mktemp("hub"))


@pytest.fixture
def output(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the module's output folder (tests modify it), with its stand-in Hugging Face cache."""
    return copy_with_cache(built, tmp_path, monkeypatch)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def assert_token_only_in_auth_header(fake: FakeHub) -> None:
    assert fake.requests
    for r in fake.requests:
        assert TOKEN not in str(r.url)
        assert TOKEN.encode() not in r.content
        for name, value in r.headers.items():
            if name.lower() == "authorization":
                assert value == f"Bearer {TOKEN}"
            else:
                assert TOKEN not in value, name


def test_push_uploads_the_staged_folder(fake_hub: FakeHub, output: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(output)
    code = hub.push_main([str(output), "--repo-id", "alice/tiny-s1", "--private"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "pushed" in captured.out and f"{ENDPOINT}/alice/tiny-s1/commit/{OID}" in captured.out
    assert json.loads(fake_hub.posts("/api/repos/create")[0].content) == {
        "name": "tiny-s1", "organization": "alice", "visibility": "private"
    }  # fmt: skip
    (commit,) = fake_hub.commits
    assert set(commit["files"]) == ADAPTER_UPLOAD
    assert commit["files"]["adapter_model.safetensors"] == (output / "adapter_model.safetensors").read_bytes()
    card = commit["files"]["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["base_model"] == STANDIN and check_metadata(meta) == []
    assert 'from_pretrained("alice/tiny-s1"' in card
    assert fake_hub.posts("/api/validate-yaml")  # the Hub's own check ran on our card
    assert_token_only_in_auth_header(fake_hub)
    assert TOKEN not in captured.out + captured.err
    # The training output is untouched; nothing on disk holds the token.
    assert snapshot(output) == before
    for folder in (output, hub.default_staging(output)):
        for p in folder.rglob("*"):
            assert not p.is_file() or TOKEN.encode() not in p.read_bytes(), p


def test_dry_run_writes_exact_staging_and_sends_nothing(
    fake_hub: FakeHub, output: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (output / "checkpoint-10").mkdir()
    (output / "checkpoint-10" / "optimizer.pt").write_bytes(b"x" * 10)
    (output / "training_args.bin").write_bytes(b"pickle")
    (output / "eval").mkdir()
    (output / "eval" / "gsm8k_summary.json").write_text(json.dumps({"accuracy": 0.25}))
    staging = output.parent / "stage"
    assert hub.push_main([str(output), "--repo-id", "alice/x", "--dry-run", "--staging", str(staging)]) == 0
    printed = capsys.readouterr().out
    files = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
    assert files == ADAPTER_UPLOAD | {"eval/gsm8k_summary.json"}
    assert printed.startswith(f"base model: architecture matches {STANDIN} (hidden size 64, layers 2")
    lines = printed.splitlines()
    listed = dict(line.split()[0:2:1] for line in lines[lines.index(next(x for x in lines if "dry run" in x)) + 1 : -1])
    assert set(listed) == files
    assert listed["adapter_model.safetensors"] == f"{(output / 'adapter_model.safetensors').stat().st_size / 1024:.1f}"
    assert listed["run_report.json"] == str((staging / "run_report.json").stat().st_size)  # bytes under 1 KiB
    assert "9 files" in printed
    assert fake_hub.requests == []
    assert "| accuracy | 0.25 |" in (staging / "README.md").read_text()


def test_secret_recipe_key_is_dropped_and_a_leaking_file_stops_the_push(fake_hub: FakeHub, output: Path) -> None:
    recipe = yaml.safe_load((output / "recipe.resolved.yaml").read_text())
    (output / "recipe.resolved.yaml").write_text(yaml.safe_dump({**recipe, "hub_token": TOKEN}))
    url = hub.push(output, "alice/tiny", wait=0)
    assert url == f"{ENDPOINT}/alice/tiny/commit/{OID}"
    assert fake_hub.commits[0]["revision"] == "main"
    uploaded = yaml.safe_load(fake_hub.commits[0]["files"]["recipe.resolved.yaml"])
    assert "hub_token" not in uploaded and uploaded["learning_rate"] == recipe["learning_rate"]
    assert_token_only_in_auth_header(fake_hub)
    # A token anywhere else in a staged text file: refuse before any request.
    report = json.loads((output / "run_report.json").read_text())
    (output / "run_report.json").write_text(json.dumps({**report, "note": f"token={TOKEN}"}))
    fake_hub.requests.clear()
    with pytest.raises(hub.PushError, match=r"run_report.json contain\(s\) your Hugging Face token") as err:
        hub.push(output, "alice/tiny", wait=0)
    assert TOKEN not in str(err.value)
    assert fake_hub.requests == []


def test_push_retries_transient_errors_then_fails_cleanly(
    fake_hub: FakeHub, output: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(output)
    fake_hub.fail_commits = 2  # two 500s, then success
    assert hub.push_main([str(output), "--repo-id", "alice/tiny"]) == 0
    assert len(fake_hub.posts("/commit/")) == 3 and len(fake_hub.commits) == 1
    assert capsys.readouterr().out.count("transient error") == 2
    fake_hub.fail_commits = 100  # the Hub stays down
    fake_hub.requests.clear()
    assert hub.push_main([str(output), "--repo-id", "alice/tiny", "--revision", "v1"]) == 1
    err = capsys.readouterr().err
    assert len(fake_hub.posts("/commit/")) == 5  # 1 try + 4 retries
    assert "push to alice/tiny failed" in err and "500" in err
    assert f"Your output folder {output} is untouched" in err
    assert f"Retry with: qwen-recipes push {output} --repo-id alice/tiny" in err
    assert fake_hub.posts("/branch/v1")
    assert TOKEN not in err
    assert snapshot(output) == before


def test_auth_errors_are_not_retried(fake_hub: FakeHub, output: Path) -> None:
    fake_hub.fail_commits, fake_hub.fail_status = 1, 401
    with pytest.raises(hub.PushError, match="push to alice/tiny failed") as err:
        hub.push(output, "alice/tiny", wait=0)
    assert "401" in str(err.value)
    assert len(fake_hub.posts("/commit/")) == 1


def test_push_without_token_or_with_local_base_is_refused(
    fake_hub: FakeHub, output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(hub.PushError, match=r"HF_HUB_OFFLINE .* is set; unset it to push"):
        hub.push(output, "alice/tiny")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(hub.PushError, match="no Hugging Face token: set HF_TOKEN or run `hf auth login`"):
        hub.push(output, "alice/tiny")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    recipe = yaml.safe_load((output / "recipe.resolved.yaml").read_text())
    (output / "recipe.resolved.yaml").write_text(yaml.safe_dump({**recipe, "base_model_id": None}))
    report = json.loads((output / "run_report.json").read_text())
    (output / "run_report.json").write_text(json.dumps({**report, "base_model_id": None}))
    with pytest.raises(hub.PushError, match="cannot find the hub id of the base model"):
        hub.push(output, "alice/tiny")
    assert fake_hub.requests == []
    assert hub.push(output, "alice/tiny", base_model_id=STANDIN, wait=0).endswith(f"/commit/{OID}")
    with pytest.raises(hub.PushError, match="already a full model"):
        hub.stage(output.parent / "base", output.parent / "s", merged=True)


def test_push_merged_model(fake_hub: FakeHub, output: Path) -> None:
    hub.push(output, "alice/tiny-merged", merged=True, dtype="fp32", wait=0)
    files = set(fake_hub.commits[0]["files"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "run_report.json"} <= files
    assert not files & {"adapter_config.json", "adapter_model.safetensors"}
    card = fake_hub.commits[0]["files"]["README.md"].decode()
    assert "library_name: transformers" in card and "vllm serve alice/tiny-merged" in card


def local_paths_in(name: str, data: bytes, *roots: Path) -> list[str]:
    """This machine's folders found in a file's bytes; in any file but the tokenizer's (whose vocabulary holds
    pieces like '/usr/'), any absolute path at all."""
    import re

    text = data.decode("utf-8", errors="ignore")
    found = [str(p.resolve()) for p in (*roots, Path.home() / ".cache") if str(p.resolve()) in text]
    absolute = re.findall(r"(?<![\w.~/:-])/(?:[\w.@+-]+/)+[\w.@+-]*", text)  # /a/b, not URLs or relative paths
    return found + ([] if name.startswith("tokenizer") else absolute)


def test_pushed_files_carry_no_local_path_and_the_adapter_loads_by_hub_id(
    fake_hub: FakeHub, output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adapter_config.json names the base by Hub id; no committed file holds a path of this machine (issue 17 #5)."""
    import torch
    from huggingface_hub import constants
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    # As training writes them: local paths in the recipe, the report (data sources, cache) and the adapter config.
    report = json.loads((output / "run_report.json").read_text())
    report["data"] = {"by_source": [{"source": "datasets[1] mine.jsonl", "path": str(output.parent / "mine.jsonl")}],
                      "cache": f"written {output.parent / 'cache'}", "first_skip": {"x": f"{output}/d.jsonl:3: bad"}}  # fmt: skip
    report["recipe"] = str(ROOT / "recipes" / "s1" / "qwen3_lora.yaml")
    (output / "run_report.json").write_text(json.dumps(report))
    adapter = json.loads((output / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]).is_absolute()  # PEFT recorded the local base folder
    assert hub.push(output, "alice/tiny", wait=0)
    files = fake_hub.commits[0]["files"]
    leaks = {name: found for name, data in files.items() if (found := local_paths_in(name, data, output.parent, ROOT))}
    assert leaks == {}
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == STANDIN
    staged_report = json.loads(files["run_report.json"])
    assert staged_report["recipe"] == "recipes/s1/qwen3_lora.yaml" and staged_report["model_name_or_path"] == STANDIN
    assert staged_report["data"]["by_source"][0]["path"] == "mine.jsonl" and "cache" not in staged_report["data"]
    assert yaml.safe_load(files["recipe.resolved.yaml"])["datasets"][1]["path"] == "mine.jsonl"
    # The committed adapter, loaded elsewhere: its base resolves by Hub id (here through the local stand-in cache).
    elsewhere = output.parent / "elsewhere"
    for name, data in files.items():
        (elsewhere / name).parent.mkdir(parents=True, exist_ok=True)
        (elsewhere / name).write_bytes(data)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    ids = torch.tensor([[151644, 872, 198, 9707, 151645]])
    loaded = AutoPeftModelForCausalLM.from_pretrained(str(elsewhere), dtype=torch.float32)
    local = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(output.parent / "base"), str(output))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, local(ids).logits)


def test_a_claimed_base_must_have_the_adapters_architecture(fake_hub: FakeHub, output: Path) -> None:
    """The tiny adapter (hidden 64, 2 layers) cannot be published as an adapter of Qwen/Qwen3-0.6B (issue 17 #6)."""
    with pytest.raises(hub.PushError) as err:
        hub.stage(output, output.parent / "s", base_model_id="Qwen/Qwen3-0.6B")
    msg = str(err.value)
    assert "does not fit the claimed base 'Qwen/Qwen3-0.6B'" in msg
    assert "hidden size 64 vs 1,024" in msg and "layers 2 vs 28" in msg and "built-in table" in msg
    assert not (output.parent / "s").exists() and fake_hub.requests == []


def test_a_tiny_random_base_cannot_be_pushed(fake_hub: FakeHub, output: Path) -> None:
    recipe = yaml.safe_load((output / "recipe.resolved.yaml").read_text())
    (output / "recipe.resolved.yaml").write_text(yaml.safe_dump({**recipe, "model_name_or_path": "tiny:qwen3"}))
    with pytest.raises(hub.PushError, match=r"tiny RANDOM test model \(tiny:qwen3\).*cannot be pushed as a real model"):
        hub.stage(output, output.parent / "s", base_model_id=STANDIN)
    assert fake_hub.requests == []

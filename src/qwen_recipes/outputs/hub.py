"""`qwen-recipes push`: stage an output folder (adapter or merged model) with its card and upload it to the Hub.

The upload goes through a staging folder holding exactly what will be committed, so `--dry-run` shows the real
thing and a failed push never touches the training output. The token comes from huggingface_hub (`HF_TOKEN`,
then the cached login) and is only ever sent in the Authorization header: it is never printed, logged or
written, and a staged file that contains it stops the push.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from qwen_recipes.errors import UserError
from qwen_recipes.recipe import scrub_values

T = TypeVar("T")

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    # a vision-language model's processor (image/video processor settings, processor arguments)
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
)
RUN_FILES = ("recipe.resolved.yaml", "run_report.json", "loss.png", "eval_results.json")
TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".md", ".txt", ".jinja")
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


class PushError(UserError):
    """A push that cannot be done or did not succeed; the message says what to do."""


def _allowed(output_dir: Path, merged: bool) -> list[str]:
    """Relative paths of the output files that belong on the Hub (never checkpoints, optimizer states, pickles)."""
    names = [*TOKENIZER_FILES, *RUN_FILES]
    names += [] if merged else [*ADAPTER_FILES, *MODEL_FILES]
    found = [n for n in names if (output_dir / n).is_file()]
    if not merged:
        found += [p.name for p in sorted(output_dir.glob("model-*-of-*.safetensors"))]
    found += [p.relative_to(output_dir).as_posix() for p in sorted(output_dir.glob("eval/*")) if p.is_file()]
    return found


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # weights can be GBs; a hard link costs nothing and the source stays untouched
    except OSError:
        shutil.copy2(src, dst)


def _fresh_staging(staging: Path, output_dir: Path) -> None:
    """Empty the staging folder, refusing to delete anything that is not a previous staging of ours."""
    if staging.resolve() == output_dir.resolve() or output_dir.resolve() in staging.resolve().parents:
        raise PushError(f"--staging {staging} must be outside the output folder {output_dir}")
    if staging.exists():
        known = {*ADAPTER_FILES, *MODEL_FILES, *TOKENIZER_FILES, *RUN_FILES, "README.md"}
        strays = [
            p for p in staging.rglob("*")
            if p.is_file() and p.name not in known and p.parent.name != "eval" and not p.name.startswith("model-")
        ]  # fmt: skip
        if strays:
            raise PushError(
                f"{staging} exists and holds files a staging folder never has (e.g. {strays[0].name}); "
                "remove it or pass another --staging folder"
            )
        shutil.rmtree(staging)
    staging.mkdir(parents=True)


def stage(
    output_dir: str | Path,
    staging: str | Path,
    repo_id: str | None = None,
    merged: bool = False,
    dtype: str | None = None,
    base_model_id: str | None = None,
    license: str | None = None,
) -> list[Path]:
    """Write exactly what a push uploads into `staging` (files, scrubbed recipe, fresh card); returns the files."""
    from qwen_recipes.outputs.card import CardError, write_model_card

    output_dir, staging = Path(output_dir), Path(staging)
    if not output_dir.is_dir():
        raise PushError(f"{output_dir}: no such folder; pass a training output folder")
    is_adapter = (output_dir / "adapter_config.json").exists()
    if merged and not is_adapter:
        raise PushError(f"--merged: {output_dir} holds no adapter (it is already a full model); drop --merged")
    if not is_adapter and not (output_dir / "config.json").exists():
        raise PushError(f"{output_dir}: neither adapter_config.json nor config.json; nothing to push")
    from qwen_recipes.outputs.card import count_parameters, load_run, resolve_base_model_id
    from qwen_recipes.outputs.portable import NotPortable, check_claimed_base, check_portable, is_random_base

    try:
        run = load_run(output_dir)
        if is_random_base(run.recipe, run.report):
            raise PushError(
                f"{output_dir} was trained on a tiny RANDOM test model "
                f"({run.recipe.get('model_name_or_path') or run.report.get('model_name_or_path')}): its weights are "
                "random, it is no published model, and it cannot be pushed as a real model under any base id. "
                "Train on a real base (model_name_or_path: a Hub id) to get something to push"
            )
        base_id, _ = resolve_base_model_id(run, base_model_id)
        print(f"base model: {check_claimed_base(output_dir, run, base_id)}")
    except (CardError, NotPortable) as e:
        raise PushError(str(e)) from e
    parameters = count_parameters(run)  # from the local base, before the staged files name it by its Hub id
    _fresh_staging(staging, output_dir)
    if merged:
        from qwen_recipes.outputs.merge import MergeError, merge_adapter

        try:
            merge_adapter(output_dir, staging, dtype=dtype, card=False)
        except MergeError as e:
            raise PushError(str(e)) from e
    for rel in _allowed(output_dir, merged):
        (staging / rel).unlink(missing_ok=True)
        if rel in PORTABLE_FILES:
            _write_portable(output_dir / rel, staging / rel, base_id)
        else:
            _link_or_copy(output_dir / rel, staging / rel)
    for rel in ("config.json", "run_report.json", "recipe.resolved.yaml"):  # a merge writes its own copies
        if merged and (staging / rel).is_file() and rel not in _allowed(output_dir, merged):
            _write_portable(staging / rel, staging / rel, base_id)
    try:
        # The card is written fresh into staging (never peft's README, whose base_model is a local path).
        write_model_card(staging, staging / "README.md", base_id, license, repo_id, parameters=parameters)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        check_portable([p for p in files if p.name not in TOKENIZER_FILES], staging, TEXT_SUFFIXES, output_dir)
    except (CardError, NotPortable) as e:
        raise PushError(str(e)) from e
    return files


# Files staged through `_write_portable`: a Hub id for the base, no local path, no secret.
PORTABLE_FILES = ("adapter_config.json", "config.json", "recipe.resolved.yaml", "run_report.json")


def _write_portable(src: Path, dst: Path, base_id: str) -> None:
    """Copy a run file with the base named by its Hub id, local paths made portable and secrets dropped."""
    import json

    from qwen_recipes.outputs.card_body import is_hub_id
    from qwen_recipes.outputs.portable import portable

    if src.suffix == ".json":
        data = json.loads(src.read_text())
        if "base_model_name_or_path" in data:  # adapter_config.json: loadable from the Hub by this id
            data["base_model_name_or_path"] = base_id
        for key in ("_name_or_path", "model_name_or_path"):
            if data.get(key) and not is_hub_id(data[key]):
                data[key] = base_id
        if isinstance(data.get("data"), dict):
            data["data"].pop("cache", None)  # where this machine cached the tokenized data
        dst.write_text(json.dumps(portable(data), indent=2) + "\n")
        return
    values = scrub_values(yaml.safe_load(src.read_text()) or {})
    if values.get("model_name_or_path") and not is_hub_id(values["model_name_or_path"]):
        values["model_name_or_path"] = base_id
    text = yaml.safe_dump(portable(values), sort_keys=False, allow_unicode=True)
    dst.write_text("# resolved recipe of this run (bases merged, overrides applied; local paths shortened)\n" + text)


def check_no_token(files: list[Path], token: str | None) -> None:
    """Refuse to upload a text file that contains the token, or anything shaped like a Hub token."""
    from qwen_recipes.recipe.values import HUB_TOKEN

    texts = {p: p.read_text(errors="ignore") for p in files if p.suffix in TEXT_SUFFIXES}
    leaks = [p for p, text in texts.items() if token and token in text]
    if leaks:
        names = ", ".join(str(p) for p in leaks)
        raise PushError(f"{names} contain(s) your Hugging Face token; remove it from the file(s) before pushing")
    if shaped := [p for p, text in texts.items() if HUB_TOKEN.search(text)]:
        names = ", ".join(str(p) for p in shaped)
        raise PushError(f"{names} contain(s) what looks like a Hugging Face token (hf_...); remove it before pushing")


def _is_transient(error: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return False
    if isinstance(error, HfHubHTTPError):
        response = getattr(error, "response", None)
        return response is not None and response.status_code in TRANSIENT_STATUS
    return isinstance(error, (httpx2.TransportError, ConnectionError, TimeoutError))


def with_retries(fn: Callable[[], T], what: str, retries: int = 4, wait: float = 2.0) -> T:
    """Call `fn`, retrying transient Hub errors (5xx, 429, network) with exponential backoff."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as e:
            if not _is_transient(e) or attempt == retries:
                raise
            delay = wait * 2**attempt
            print(f"{what}: transient error ({type(e).__name__}), retry {attempt + 1}/{retries} in {delay:.0f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


def push(
    output_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    merged: bool = False,
    staging: str | Path | None = None,
    retries: int = 4,
    wait: float = 2.0,
    **card_args: Any,
) -> str:
    """Stage and upload an output folder; returns the commit URL. Raises PushError with a retry hint."""
    from huggingface_hub import HfApi, constants, get_token

    if constants.is_offline_mode():
        raise PushError("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set; unset it to push, or use --dry-run")
    output_dir = Path(output_dir)
    staging = Path(staging) if staging else default_staging(output_dir)
    token = get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again")
    files = stage(output_dir, staging, repo_id=repo_id, merged=merged, **card_args)
    check_no_token(files, token)
    api = HfApi(token=token)
    try:
        with_retries(lambda: api.create_repo(repo_id, private=private, exist_ok=True), "create repo", retries, wait)
        if revision and revision != "main":
            with_retries(lambda: api.create_branch(repo_id, branch=revision, exist_ok=True), "branch", retries, wait)
        info = with_retries(
            lambda: api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                revision=revision,
                commit_message=f"qwen-recipes push of {output_dir.name}",
            ),
            "upload",
            retries,
            wait,
        )
    except Exception as e:
        if isinstance(e, PushError):
            raise
        reason = _scrub(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, token)
        hint = f"qwen-recipes push {output_dir} --repo-id {repo_id}" + (" --merged" if merged else "")
        raise PushError(
            f"push to {repo_id} failed: {reason}\nYour output folder {output_dir} is untouched and the staged upload "
            f"is in {staging}. Retry with: {hint}"
        ) from None
    return str(getattr(info, "commit_url", info))


def default_staging(output_dir: Path) -> Path:
    """`<output_dir>-hub`, next to the output folder, so the output itself is never modified."""
    return output_dir.parent / f"{output_dir.name}-hub"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def describe(files: list[Path], staging: Path) -> str:
    """The file list with sizes, as `--dry-run` prints it."""
    rows = [(p.relative_to(staging).as_posix(), p.stat().st_size) for p in files]
    width = max((len(r) for r, _ in rows), default=0)
    lines = [f"  {rel:<{width}}  {_size(size):>10}" for rel, size in rows]
    total = sum(size for _, size in rows)
    return "\n".join([*lines, f"  {len(rows)} files, {_size(total)} in {staging}"])


def _print_gguf_note(staging: Path) -> None:
    import json

    from qwen_recipes.outputs.card_body import gguf_note

    config = staging / "adapter_config.json"
    if config.is_file() and (note := gguf_note(json.loads(config.read_text()))):
        print(f"note: {note}")


def push_main(argv: list[str]) -> int:
    """`qwen-recipes push OUTPUT_DIR --repo-id user/name [--private] [--revision R] [--merged] [--dry-run]`."""
    parser = argparse.ArgumentParser(prog="qwen-recipes push", description="push an output folder to the Hub")
    parser.add_argument("output_dir", help="training output folder (adapter or full model)")
    parser.add_argument("--repo-id", required=True, help="Hub repository, e.g. alice/qwen3-0.6b-s1-lora")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to (created if missing; default main)")
    parser.add_argument("--merged", action="store_true", help="merge the adapter into its base and push the model")
    parser.add_argument(
        "--dtype",
        choices=("bf16", "fp16", "fp32"),
        help="dtype of a --merged model (default bf16; fp32 for an fp32 base)",
    )
    parser.add_argument("--dry-run", action="store_true", help="write the staging folder and list it; upload nothing")
    parser.add_argument("--staging", help="staging folder (default: OUTPUT_DIR-hub next to the output)")
    parser.add_argument("--base-model-id", help="hub id of the base model when the run only recorded a local path")
    parser.add_argument("--license", help="licence id when the base model is not in the known-licence table")
    args = parser.parse_args(argv)
    from qwen_recipes.outputs.card import is_hub_id

    if not is_hub_id(args.repo_id):
        print(f"qwen-recipes push: --repo-id {args.repo_id!r} must look like 'user/name'", file=sys.stderr)
        return 2
    output_dir = Path(args.output_dir)
    staging = Path(args.staging) if args.staging else default_staging(output_dir)
    card_args = {"dtype": args.dtype, "base_model_id": args.base_model_id, "license": args.license}
    try:
        if args.dry_run:
            from huggingface_hub import get_token

            files = stage(output_dir, staging, repo_id=args.repo_id, merged=args.merged, **card_args)
            check_no_token(files, get_token())  # the same check as a real push: a dry run shows what would stop it
            print(f"dry run: would upload to {args.repo_id} (revision {args.revision or 'main'}):")
            print(describe(files, staging))
            _print_gguf_note(staging)
            return 0
        url = push(output_dir, args.repo_id, args.private, args.revision, args.merged, staging, **card_args)
        _print_gguf_note(staging)
    except PushError as e:
        print(f"qwen-recipes push: {e}", file=sys.stderr)
        return 1
    print(f"pushed {output_dir} to {args.repo_id}: {url}")
    return 0

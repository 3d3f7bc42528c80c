"""Adapter identity on disk, once: `v<N>` folders, int versions, vLLM LoRA ids, and the latest-adapter pointer."""

from __future__ import annotations

import json
import re
from pathlib import Path

LATEST_FILE = "latest_adapter.json"  # in a run's output folder: the newest published adapter (serving reads it)
ADAPTERS_FOLDER = "adapters"  # in a run's output folder: one `v<N>` PEFT folder per published version
PEFT_CONFIG_FILE = "adapter_config.json"  # what makes a folder a PEFT adapter

_VERSION_FOLDER = re.compile(r"v(\d+)")


def version_name(version: int) -> str:
    """The folder (and LoRA) name of a training version: `v<N>`."""
    return f"v{version}"


def version_of_name(name: str) -> int | None:
    """The training version a `v<N>` name stands for, else None."""
    match = _VERSION_FOLDER.fullmatch(name)
    return int(match.group(1)) if match else None


def lora_int_id(version: int) -> int:
    """vLLM caches adapters by integer id, so every version gets its own (ids start at 1)."""
    return version + 1


def version_of_lora_int_id(lora_id: int) -> int:
    """Inverse of `lora_int_id`."""
    return lora_id - 1


def is_adapter_folder(path: str | Path) -> bool:
    """Whether `path` holds a PEFT adapter (its `adapter_config.json`)."""
    return (Path(path) / PEFT_CONFIG_FILE).is_file()


def adapters_dir(output_dir: str | Path) -> Path:
    """Where a run publishes its `v<N>` adapter folders."""
    return Path(output_dir) / ADAPTERS_FOLDER


def adapter_versions(root: str | Path) -> dict[int, Path]:
    """The `v<N>` adapter folders directly inside `root`, by version (symlinks are not versions)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    for path in root.iterdir():
        version = version_of_name(path.name)
        if version is not None and path.is_dir() and not path.is_symlink():
            found[version] = path
    return found


def write_latest(output_dir: str | Path, version: int, path: str | Path, stage: str) -> dict:
    """Point the run's latest-adapter file at `path` (version `version`, written by `stage`); returns the record."""
    latest = {"version": version, "name": version_name(version), "path": str(path), "stage": stage}
    (Path(output_dir) / LATEST_FILE).write_text(json.dumps(latest, indent=2) + "\n")
    return latest


def read_latest(output_dir: str | Path) -> dict | None:
    """The run's newest published adapter ({version, name, path, stage}) or None."""
    path = Path(output_dir) / LATEST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def adapter_version(path: str | Path, latest: dict | None = None) -> int:
    """An adapter folder's training version: the latest record's when it points here, else `v<N>`'s N, else 0."""
    folder = Path(path).resolve()
    if latest and Path(latest["path"]).resolve() == folder:
        return int(latest["version"])
    version = version_of_name(folder.name)
    return 0 if version is None else version

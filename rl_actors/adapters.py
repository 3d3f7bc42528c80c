"""Versioned LoRA adapters as plain PEFT folders, moved between actors as bytes (no shared disk needed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from contract.adapter_store import PEFT_CONFIG_FILE, adapter_versions, lora_int_id, version_name


@dataclass(frozen=True)
class AdapterSnapshot:
    """One adapter version: the files of a PEFT `save_pretrained` folder, by name."""

    version: int
    files: dict[str, bytes]

    @property
    def name(self) -> str:
        return version_name(self.version)

    @property
    def lora_int_id(self) -> int:
        """vLLM caches adapters by integer id, so every version gets its own (ids start at 1)."""
        return lora_int_id(self.version)

    @classmethod
    def from_dir(cls, path: str | Path, version: int) -> AdapterSnapshot:
        """Read a PEFT adapter folder."""
        path = Path(path)
        if not (path / PEFT_CONFIG_FILE).exists():
            raise FileNotFoundError(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
        return cls(version, {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.is_file()})

    def write(self, root: str | Path) -> Path:
        """Write the folder as `<root>/<name>` and return its path."""
        out = Path(root) / self.name
        out.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (out / name).write_bytes(data)
        return out


def versions_to_prune(versions: Iterable[int], keep_last: int | None, protected: Iterable[int] = ()) -> list[int]:
    """The versions to delete so that only the newest `keep_last` and the `protected` ones remain (None: none)."""
    if keep_last is None:
        return []
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    newest = sorted(set(versions), reverse=True)
    kept = set(newest[:keep_last]) | set(protected)
    return sorted(v for v in newest if v not in kept)


def prune_adapter_versions(root: str | Path, keep_last: int | None, protected: Iterable[int] = ()) -> list[int]:
    """Delete the `v<N>` folders of `root` that `versions_to_prune` names; returns the deleted versions."""
    folders = adapter_versions(root)
    doomed = versions_to_prune(folders, keep_last, protected)
    for version in doomed:
        shutil.rmtree(folders[version])
    return doomed


def lora_target_modules(model) -> list[str]:
    """LoRA targets read off the architecture: names of its Linear layers, except the output head (tied or not)."""
    import torch

    head = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
    )

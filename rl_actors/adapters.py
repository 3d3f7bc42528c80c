"""Versioned LoRA adapters as plain PEFT folders, moved between actors as bytes (no shared disk needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AdapterSnapshot:
    """One adapter version: the files of a PEFT `save_pretrained` folder, by name."""

    version: int
    files: dict[str, bytes]

    @property
    def name(self) -> str:
        return f"v{self.version}"

    @property
    def lora_int_id(self) -> int:
        """vLLM caches adapters by integer id, so every version gets its own (ids start at 1)."""
        return self.version + 1

    @classmethod
    def from_dir(cls, path: str | Path, version: int) -> AdapterSnapshot:
        """Read a PEFT adapter folder."""
        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
        return cls(version, {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.is_file()})

    def write(self, root: str | Path) -> Path:
        """Write the folder as `<root>/<name>` and return its path."""
        out = Path(root) / self.name
        out.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (out / name).write_bytes(data)
        return out


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

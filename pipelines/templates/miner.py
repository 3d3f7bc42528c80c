"""drain3 template mining: fit once, persist, then match frozen (training and serving share one miner file)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.memory_buffer_persistence import MemoryBufferPersistence
from drain3.template_miner_config import TemplateMinerConfig

from pipelines.templates.masking import DEFAULT_MASKING

# Per matcher worker: contents that repeat verbatim skip drain3 (masking + tree search). Measured hit rates: 32%
# of the bundled BGL_2k lines, 8% of the LogLead HDFS sample's messages (block ids make most lines unique).
MATCH_CACHE_SIZE = 1 << 17
STATE_FORMAT = "logrl-drain3-miner"
STATE_VERSION = 1
UNSEEN_ID = -1


def _drain_config(settings: dict) -> TemplateMinerConfig:
    """Build drain3's config in code (no drain3.ini lookup), from the settings that are also persisted."""
    config = TemplateMinerConfig()
    config.drain_sim_th = settings["sim_threshold"]
    config.drain_depth = settings["depth"]
    config.drain_max_children = settings["max_children"]
    config.drain_max_clusters = None  # an LRU would evict templates and mutate state on lookup
    config.parametrize_numeric_tokens = True
    config.masking_instructions = [MaskingInstruction(pattern, name) for name, pattern in settings["masking"]]
    config.snapshot_compress_state = True
    return config


def _drain_miner(settings: dict, state: bytes | None = None) -> TemplateMiner:
    """A drain3 TemplateMiner from settings, restored from drain3's serialized state when given."""
    persistence = None
    if state is not None:
        persistence = MemoryBufferPersistence()
        persistence.save_state(state)
    miner = TemplateMiner(persistence_handler=persistence, config=_drain_config(settings))
    # Without a handler drain3 never snapshots, so learning stays fast and matching has no side effect.
    miner.persistence_handler = None
    return miner


class LogTemplateMiner:
    """A drain3 miner with logrl's masking; `fit` learns templates, `match` never changes them."""

    def __init__(
        self,
        sim_threshold: float = 0.4,
        depth: int = 4,
        max_children: int = 100,
        masking: Iterable[tuple[str, str]] = DEFAULT_MASKING,
    ):
        self.settings = {
            "sim_threshold": sim_threshold,
            "depth": depth,
            "max_children": max_children,
            "masking": [list(pair) for pair in masking],
        }
        self._miner = _drain_miner(self.settings)
        self.fitted_lines = 0  # lines this miner learned from (not saved: a loaded miner reports 0)

    @classmethod
    def fit(
        cls,
        contents: Iterable[str],
        sim_threshold: float = 0.4,
        depth: int = 4,
        masking: Iterable[tuple[str, str]] = DEFAULT_MASKING,
    ) -> LogTemplateMiner:
        """Learn templates from contents in order (drain is sequential: each line updates the tree)."""
        mask = cls(masking=masking).mask
        return cls.fit_masked((mask(content) for content in contents), sim_threshold, depth, masking)

    @classmethod
    def fit_masked(
        cls,
        masked_contents: Iterable[str],
        sim_threshold: float = 0.4,
        depth: int = 4,
        masking: Iterable[tuple[str, str]] = DEFAULT_MASKING,
    ) -> LogTemplateMiner:
        """`fit` on contents already masked with the same rules (`mask_contents`, run in parallel workers): drain3's
        own `add_log_message` is exactly mask-then-learn, so the tree is the same; the driver only learns."""
        miner = cls(sim_threshold=sim_threshold, depth=depth, masking=masking)
        for masked in masked_contents:
            miner._miner.drain.add_log_message(masked)
            miner.fitted_lines += 1
        return miner

    def mask(self, content: str) -> str:
        """A content as drain3 sees it under this miner's masking rules."""
        return self._miner.masker.mask(content)

    @property
    def n_templates(self) -> int:
        return len(self._miner.drain.id_to_cluster)

    def templates(self) -> dict[int, str]:
        """Template id -> template text, for reports."""
        return {cid: cluster.get_template() for cid, cluster in self._miner.drain.id_to_cluster.items()}

    def template_sizes(self) -> dict[int, int]:
        """Template id -> how many fitted lines drain3 put in it."""
        return {cid: cluster.size for cid, cluster in self._miner.drain.id_to_cluster.items()}

    def match(self, content: str) -> tuple[int, str]:
        """(template id, template) for a content; unseen content gives (-1, masked content). Never learns."""
        # "fallback" also searches all same-length templates when the prefix tree misses, which happens when
        # a template generalised after its first line routed it through the tree.
        cluster = self._miner.match(content, full_search_strategy="fallback")
        if cluster is None:
            return UNSEEN_ID, self._miner.masker.mask(content).strip()
        return cluster.cluster_id, cluster.get_template()

    def state_bytes(self) -> bytes:
        """drain3's own serialization of the parse tree and clusters."""
        buffer = MemoryBufferPersistence()
        self._miner.persistence_handler = buffer
        try:
            self._miner.save_state("logrl export")
        finally:
            self._miner.persistence_handler = None
        return buffer.state

    def save(self, path: str | Path) -> Path:
        """Write settings (masking included) and drain state to one JSON file; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "settings": self.settings,
            "n_templates": self.n_templates,
            "drain_state": self.state_bytes().decode("ascii"),
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)  # readers never see a half-written miner
        return path

    @classmethod
    def load(cls, path: str | Path) -> LogTemplateMiner:
        """Rebuild the exact miner `save` wrote, using the masking stored in the file, not today's defaults.

        The drain state is decoded by jsonpickle, which can build arbitrary objects: load only files this
        pipeline wrote (a trusted artifact, like model weights), never user uploads.
        """
        payload = json.loads(Path(path).read_text())
        if payload.get("format") != STATE_FORMAT or payload.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: not a {STATE_FORMAT} v{STATE_VERSION} file")
        settings = payload["settings"]
        miner = cls(settings["sim_threshold"], settings["depth"], settings["max_children"], settings["masking"])
        miner._miner = _drain_miner(miner.settings, payload["drain_state"].encode("ascii"))
        return miner


class TemplateMatcher:
    """Ray Data `map_batches` stage: adds `template_id` and `template` from a frozen miner loaded once per worker."""

    def __init__(self, state_path: str, cache_size: int = MATCH_CACHE_SIZE):
        self.miner = LogTemplateMiner.load(state_path)
        # The miner is frozen, so a content's match never changes: a bounded LRU of contents is exact.
        self.match = lru_cache(maxsize=cache_size)(self.miner.match) if cache_size else self.miner.match

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids, templates = [], []
        for content in batch.column("content").to_pylist():
            template_id, template = self.match(content)
            ids.append(template_id)
            templates.append(template)
        batch = batch.append_column("template_id", pa.array(ids, type=pa.int64()))
        return batch.append_column("template", pa.array(templates, type=pa.string()))


_MASKERS: dict[tuple, LogTemplateMiner] = {}


def mask_contents(batch: pa.Table, masking: tuple[tuple[str, str], ...]) -> pa.Table:
    """Ray Data stage: only the `masked` column, each content under `masking` (what drain learns from)."""
    key = tuple(map(tuple, masking))
    if key not in _MASKERS:
        _MASKERS.clear()
        _MASKERS[key] = LogTemplateMiner(masking=key)
    mask = _MASKERS[key].mask
    return pa.table({"masked": pa.array([mask(text) for text in batch.column("content").to_pylist()], pa.string())})

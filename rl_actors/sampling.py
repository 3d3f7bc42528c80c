"""Which training sessions a step uses: shuffled epochs, optionally at a set share of anomalous sessions."""

from __future__ import annotations

import random


class PromptSampler:
    """Cycles through sessions in a freshly shuffled order each epoch, optionally at a set anomalous share.

    Anomalies are rare in logs (HDFS: 3%); without `anomalous_share` a GRPO step of a few prompts would
    seldom see one. Each pool (anomalous, normal) cycles on its own, so no session repeats before its pool
    is used up.
    """

    def __init__(self, labels: list[str], seed: int, anomalous_share: float | None = None):
        self.rng, self.share = random.Random(seed), anomalous_share
        anomalous = [i for i, label in enumerate(labels) if label == "anomalous"]
        normal = [i for i, label in enumerate(labels) if label != "anomalous"]
        if anomalous_share is None or not anomalous or not normal:
            self.pools = {"all": list(range(len(labels)))}
        else:
            self.pools = {"anomalous": anomalous, "normal": normal}
        self.orders: dict[str, list[int]] = {name: [] for name in self.pools}

    def _pick(self, pool: str) -> int:
        if not self.orders[pool]:
            self.orders[pool] = list(self.pools[pool])
            self.rng.shuffle(self.orders[pool])
        return self.orders[pool].pop()

    def state_dict(self) -> dict:
        """The sampler's cursor: RNG state and what is left of each pool's epoch (JSON-serialisable).

        Restored into a sampler built from the same labels, it continues exactly where this one stopped: no prompt
        batch replayed or skipped after a resume.
        """
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "orders": {k: list(v) for k, v in self.orders.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict`; refuses one taken with other pools (other labels or anomalous share)."""
        if set(state["orders"]) != set(self.pools):
            raise ValueError(f"sampler state has pools {sorted(state['orders'])}, this sampler {sorted(self.pools)}")
        for name, order in state["orders"].items():
            if not set(order) <= set(self.pools[name]):
                raise ValueError(f"sampler state's {name!r} pool holds sessions this data set does not")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.orders = {k: list(v) for k, v in state["orders"].items()}

    def next(self, count: int) -> list[int]:
        if "all" in self.pools:
            return [self._pick("all") for _ in range(count)]
        n_anomalous = round(count * self.share)
        picks = [self._pick("anomalous") for _ in range(n_anomalous)]
        picks += [self._pick("normal") for _ in range(count - n_anomalous)]
        self.rng.shuffle(picks)
        return picks

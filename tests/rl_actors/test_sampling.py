"""The trainer's prompt sampler: epochs without repeats, and a set anomalous share for rare anomalies."""

from __future__ import annotations

import pytest

from rl_actors.sampling import PromptSampler


def test_natural_order_covers_every_session_once_per_epoch() -> None:
    sampler = PromptSampler(["normal"] * 7 + ["anomalous"], seed=0)
    assert sorted(sampler.next(8)) == list(range(8))


def test_anomalous_share_is_met_and_pools_cycle() -> None:
    labels = ["anomalous"] * 3 + ["normal"] * 97
    sampler = PromptSampler(labels, seed=1, anomalous_share=0.5)
    picks = [sampler.next(8) for _ in range(6)]
    for batch in picks:
        assert sum(labels[i] == "anomalous" for i in batch) == 4
    first_anomalous = [i for i in picks[0] + picks[1] if labels[i] == "anomalous"][:3]
    assert sorted(first_anomalous) == [0, 1, 2]  # each anomalous session once before any repeats


@pytest.mark.parametrize("labels", [["normal"] * 4, ["anomalous"] * 4])
def test_one_class_falls_back_to_natural_order(labels: list[str]) -> None:
    assert sorted(PromptSampler(labels, seed=0, anomalous_share=0.5).next(4)) == [0, 1, 2, 3]


@pytest.mark.parametrize("share", [None, 0.5])
def test_a_restored_sampler_continues_where_the_saved_one_stopped(share: float | None) -> None:
    import json

    labels = ["anomalous"] * 3 + ["normal"] * 10
    uninterrupted = PromptSampler(labels, seed=3, anomalous_share=share)
    expected = [uninterrupted.next(4) for _ in range(8)]
    first = PromptSampler(labels, seed=3, anomalous_share=share)
    done = [first.next(4) for _ in range(3)]
    state = json.loads(json.dumps(first.state_dict()))  # saved to disk as JSON
    resumed = PromptSampler(labels, seed=99, anomalous_share=share)  # the seed does not matter after a restore
    resumed.load_state_dict(state)
    assert done + [resumed.next(4) for _ in range(5)] == expected


def test_a_sampler_state_from_other_data_is_refused() -> None:
    state = PromptSampler(["normal"] * 5, seed=0).state_dict()
    with pytest.raises(ValueError, match="pools"):
        PromptSampler(["anomalous", "normal"], seed=0, anomalous_share=0.5).load_state_dict(state)
    state = PromptSampler(["normal"] * 5, seed=0)
    state.next(1)
    with pytest.raises(ValueError, match="does not"):
        PromptSampler(["normal"] * 2, seed=0).load_state_dict(state.state_dict())

"""Several nodes, simulated: a `ray.cluster_utils.Cluster` of raylets on this machine, nodes added and removed.

The head node has no CPUs (driver, GCS and the run's control actor); worker nodes are sized so each role has one
place to go: node A (3 CPUs) alone fits the learner (3 CPUs), node B (2 CPUs) then takes the rollout engine (1 CPU)
and the reward actor (0.5 CPU). Node C (5 CPUs) joins later, with room for every role.

1. SPREAD: the project's actor groups, built from the config with `placement_strategy: SPREAD`, put their actors on
   different nodes (each actor reports its node from inside); PACK puts them on one.
2. Node B is SIGKILLed (all its processes) as GRPO step 0 draws its prompts: the real vLLM engine and the reward
   actor on it die, are replaced in their bundles, which Ray re-places on node C; the step completes with all
   P x G samples and the run finishes its steps, checkpointing each.
3. Node A, the learner's, is then SIGKILLed: the next step fails on the dead learner; `run_train_stage(resume=True)`
   (what `logrl train --resume` runs) continues from the newest checkpoint with everything on node C.

All nodes listen on 127.0.0.1 (Ray's single-node address mode) with Ray's token auth on, as `logrl`'s own local
clusters do: tests 1 and 2 find no listening socket of the cluster (learner included) beyond loopback, and test 1
an agent that answers 401 without the token.
"""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# A removed node is declared dead after about 1 s of failed health checks (Ray's default: about 15 s).
FAST_NODE_DEATH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 2,
}
NODE_START_S = 120  # a raylet's start-up on the shared 2-core box (Ray's own wait is 30 s)


def _node_of(actor) -> str:
    """The node id an actor runs on, asked inside the actor."""
    import ray

    return ray.get(actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))


def _bundle_nodes(group) -> list[str]:
    """The node id of each bundle of a placement group, from Ray's placement-group table."""
    from ray.util import placement_group_table

    table = placement_group_table(group)["bundles_to_node_id"]
    return [table[i] for i in range(len(table))]


class Nodes:
    """The simulated cluster: the head and named worker nodes, added and SIGKILLed by name."""

    def __init__(self):
        from ray.cluster_utils import Cluster

        opts = {"num_cpus": 0, "include_dashboard": False, "node_ip_address": "127.0.0.1"}
        self.cluster = Cluster(initialize_head=True, head_node_args={**opts, "_system_config": FAST_NODE_DEATH})
        self.nodes: dict = {}

    def add(self, name: str, cpus: int) -> str:
        """Start a worker node with `cpus` CPUs; returns its node id."""
        node = self.cluster.add_node(wait=False, num_cpus=cpus, node_ip_address="127.0.0.1")
        self.cluster.wait_for_nodes(timeout=NODE_START_S)
        self.nodes[name] = node
        return node.node_id

    def id(self, name: str) -> str:
        return self.nodes[name].node_id

    def kill(self, name: str) -> None:
        """SIGKILL every process of the node (raylet, object store, its actors), as a crashed machine would."""
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=False)


@pytest.fixture(scope="module")
def nodes():
    """A head and nodes A and B, closed to the network; the driver connected. Ray's settings restored after."""
    import ray

    from cluster.environment import local_cluster_env
    from contract.actor_env import forwarded_env
    from rl_actors.ray_internals import reload_ray_settings

    if ray.is_initialized():
        ray.shutdown()
    # Every Ray port on 127.0.0.1, token auth on with a fresh token: what `logrl` gives its own local clusters; a
    # killed engine's child processes die with it. The environment as it was comes back afterwards.
    wanted = {**local_cluster_env({}), "RAY_AUTH_MODE": "token", "RAY_process_group_cleanup_enabled": "1"}
    saved = {key: os.environ.get(key) for key in [*wanted, "RAY_AUTH_TOKEN_PATH"]}
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ.update(wanted)
    reload_ray_settings()
    cluster = None
    try:
        cluster = Nodes()
        cluster.add("a", 3)
        cluster.add("b", 2)
        ray.init(address=cluster.cluster.address, runtime_env={"env_vars": forwarded_env()})
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reload_ray_settings()


def _listening() -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of this process's descendants (the cluster)."""
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            sockets, name = process.net_connections(kind="inet"), process.name()
        except psutil.Error:
            continue
        found += [(s.laddr.ip, s.laddr.port, name) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


def _listening_beyond_loopback() -> list[tuple[str, int, str]]:
    from serving.proxy_guard import is_loopback

    return [bind for bind in _listening() if not is_loopback(bind[0])]


def _agents_refuse_without_token() -> bool:
    """Ray's token auth is on: an HTTP agent of some node answers 401 to a request without the cluster's token."""
    import httpx

    for address, port, name in _listening():
        if name in ("ray::DashboardAgent", "ray::RuntimeEnvAgent"):
            try:
                host = f"[{address}]" if ":" in address else address
                if httpx.get(f"http://{host}:{port}/", timeout=5).status_code == 401:
                    return True
            except httpx.HTTPError:
                continue  # a gRPC port: no HTTP answer
    return False


def test_the_cluster_is_closed_and_spread_groups_land_on_different_nodes(nodes, quickstart_config, tmp_path):
    import ray

    from rl_actors.actor_group import ActorGroup
    from rl_actors.trainer import make_rewards

    @ray.remote
    class Probe:
        pass

    assert _listening_beyond_loopback() == [] and _agents_refuse_without_token()
    a, b = nodes.id("a"), nodes.id("b")
    cfg = quickstart_config(tmp_path, "reward.num_workers=2", "reward.placement_strategy=SPREAD")
    rewards = make_rewards(cfg)  # the trainer's reward group: real reward actors
    # The rollout group's placement with its resources (a vLLM engine each would only slow this test down).
    spread = ActorGroup(Probe, 2, num_cpus=cfg.rollout.num_cpus_per_worker, strategy="SPREAD", name="rollout")
    try:
        for group in (rewards, spread):
            inside = sorted(_node_of(worker) for worker in group.workers)
            assert inside == sorted([a, b]) == sorted(_bundle_nodes(group.placement_group)), group.name
    finally:
        rewards.shutdown()
        spread.shutdown()
    packed = ActorGroup(Probe, 2, num_cpus=0.5, strategy="PACK", name="packed")
    try:
        assert len({_node_of(w) for w in packed.workers}) == 1
    finally:
        packed.shutdown()


OVERRIDES = (
    "tiny_model.pretrain_steps=0", "sft.steps=0", "train.prompts_per_step=2", "rollout.group_size=2",
    "rollout.max_new_tokens=32", "train.checkpoint_every=1", "train.placement_timeout_s=180",
    "learner.num_cpus_per_worker=3", "rollout.num_cpus_per_worker=1", "reward.num_cpus_per_worker=0.5",
)  # fmt: skip


@pytest.fixture(scope="module")
def run(nodes, tmp_path_factory, quickstart_config):
    """A GRPO trainer (real learner, vLLM engine, reward actor) on nodes A (learner) and B (the others)."""
    from cluster.stages import ensure_data, ensure_model, train_rows
    from rl_actors.trainer import GRPOTrainer

    out = tmp_path_factory.mktemp("multinode")
    cfg = quickstart_config(out, *OVERRIDES, "train.steps=2")
    ensure_data(cfg)
    ensure_model(cfg)
    trainer = GRPOTrainer(cfg, train_rows(cfg), None)
    yield out, trainer
    if trainer.logger is not None:  # the resume test shuts it down itself
        trainer.shutdown()


def _grpo_steps(out) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["stage"] == "grpo"]


def test_losing_the_node_of_a_rollout_engine_and_a_reward_actor_is_survived(nodes, run):
    import ray

    from rl_actors.learner import SAMPLES_KEY

    out, trainer = run
    a, b = nodes.id("a"), nodes.id("b")
    engine, scorer = trainer.rollout.workers[0], trainer.reward.workers[0]
    assert _node_of(trainer.learner.workers[0]) == a
    assert _node_of(engine) == b and _node_of(scorer) == b
    assert _node_of(trainer.control) == ray.get_runtime_context().get_node_id()  # with the driver, never lost
    # Every process of the cluster (GCS, raylets, agents, workers, the learner's rendezvous store) is on loopback.
    assert _listening_beyond_loopback() == []
    c = nodes.add("c", 5)

    original = trainer.prompt_groups

    def kill_b_then_draw(step):  # node B dies as step 0 begins: its engine's generate call fails
        trainer.prompt_groups = original
        nodes.kill("b")
        return original(step)

    trainer.prompt_groups = kill_b_then_draw
    trainer.fit()

    assert trainer.rollout.workers[0] is not engine and trainer.reward.workers[0] is not scorer
    assert _node_of(trainer.rollout.workers[0]) == c and _node_of(trainer.reward.workers[0]) == c
    assert _bundle_nodes(trainer.rollout.placement_group) == [c] == _bundle_nodes(trainer.reward.placement_group)
    steps = _grpo_steps(out)
    per_step = trainer.cfg.train.prompts_per_step * trainer.cfg.rollout.group_size
    assert [s["step"] for s in steps] == [0, 1] and all(s[SAMPLES_KEY] == per_step for s in steps)
    assert [s["faults/replaced_actors"] for s in steps] == [2, 2]  # one engine, one reward actor, once
    assert steps[0]["sync/max_abs_logprob_diff"] < 1e-3  # the new engine holds the learner's adapter
    assert (out / "checkpoints" / "step-2" / "trainer_state.json").is_file()


def test_losing_the_learners_node_ends_the_run_and_resume_continues_on_another(nodes, run, quickstart_config, capfd):
    from ray.exceptions import RayActorError

    from cluster.stages import run_train_stage

    out, trainer = run
    assert _node_of(trainer.learner.workers[0]) == nodes.id("a")
    if not (out / "checkpoints" / "step-2" / "trainer_state.json").is_file():  # run on its own: train 2 steps
        trainer.fit()
    nodes.kill("a")
    started = time.monotonic()
    with pytest.raises(RayActorError):
        trainer.step(2)
    assert time.monotonic() - started < 120
    trainer.shutdown()
    trainer.logger = None

    cfg = quickstart_config(out, *OVERRIDES, "train.steps=3")
    result = run_train_stage(cfg, resume=True)  # `logrl train --resume`: the newest complete checkpoint
    assert "2 steps done, adapter v2" in capfd.readouterr().out
    assert [s["step"] for s in _grpo_steps(out)] == [0, 1, 2]
    assert result["adapter"]["version"] == 3
    assert (out / "checkpoints" / "step-3" / "trainer_state.json").is_file()

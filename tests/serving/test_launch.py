"""Launch guards without a Ray cluster: capacity check before serve.run, health wait timeout."""

from __future__ import annotations

import pytest

from serving import launch
from serving.config import ServeConfig


@pytest.fixture
def cluster(monkeypatch):
    resources = {"CPU": 8.0}
    monkeypatch.setattr(launch.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(launch.ray, "cluster_resources", lambda: resources)
    return resources


def test_capacity_fits(cluster):
    launch.check_capacity(ServeConfig(num_replicas=2, num_cpus_per_replica=3))  # 2 x (3 + 1 engine CPU) = 8


def test_capacity_short_on_cpus_names_the_numbers(cluster):
    with pytest.raises(RuntimeError, match="CPU: need 10, cluster has 8"):
        launch.check_capacity(ServeConfig(num_replicas=5))


def test_capacity_short_on_gpus(cluster):
    with pytest.raises(RuntimeError, match="GPU: need 1, cluster has 0"):
        launch.check_capacity(ServeConfig(num_gpus_per_replica=1))


def test_ray_must_be_initialised(monkeypatch):
    monkeypatch.setattr(launch.ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match="ray.init"):
        launch.check_capacity(ServeConfig())


def test_health_wait_times_out_with_the_last_error(free_port):
    port = free_port()  # nothing listens on it
    with pytest.raises(TimeoutError, match="not healthy after"):
        launch.wait_until_healthy(f"http://127.0.0.1:{port}", "logrl-detector", timeout_s=1.5)


def test_serve_listens_on_loopback_with_a_proxy_timeout_backstop(monkeypatch, cluster):
    started: dict = {}
    monkeypatch.setattr(launch.serve, "start", lambda http_options: started.update(http_options))
    monkeypatch.setattr(launch.serve, "run", lambda app, name, route_prefix: None)
    monkeypatch.setattr(launch, "build_detector_app", lambda *args, **kwargs: object())
    monkeypatch.setattr(launch, "wait_until_healthy", lambda *args: None)
    monkeypatch.setattr(launch, "load_adapter_info", lambda name, path: None)
    monkeypatch.setattr(launch, "open_board", lambda app_name, adapter: None)
    running = launch.run_detector(ServeConfig(request_timeout_s=30), "m", "a", "miner.json", "bgl", 640)
    assert started == {"host": "127.0.0.1", "port": 8000, "request_timeout_s": 40}
    assert running.url == "http://127.0.0.1:8000"


def test_replicas_get_the_queue_bounds_and_only_key_digests():
    from serving.app import detector_llm_config, guard_settings
    from serving.detect import AdapterInfo

    cfg = ServeConfig(
        api_keys=["plain-secret"],
        max_ongoing_requests=4,
        max_queued_requests=10,
        num_replicas=2,
        openai_limits={"max_ongoing_requests": 3, "max_n": 2, "tokens_per_minute_per_key": 9000},
    )
    guard = guard_settings(cfg)
    assert "plain-secret" not in repr(guard) and len(guard.key_digests) == 1
    assert (guard.max_ongoing_requests, guard.max_ongoing_bulk_requests, guard.max_queued_requests) == (4, 3, 10)
    assert guard.openai_caps.max_n == 2 and guard.openai_caps.priority == 1
    assert guard.tokens_per_minute_per_key == 4500  # each of the 2 replicas holds half of a key's budget
    llm = detector_llm_config(cfg, "/nonexistent/model", AdapterInfo("logrl-detector", "v1", "/a/v1", 8))
    deployment = llm.deployment_config
    # Serve hands each replica twice what its guard holds and never queues-and-drops itself: the guard's 429
    # (OpenAI shape, Retry-After) answers overload, never Serve's plain-text 503.
    assert deployment["max_ongoing_requests"] == 2 * (4 + 3 + 10) and deployment["max_queued_requests"] == -1
    assert llm.engine_kwargs["scheduling_policy"] == "priority"  # /detect (priority 0) runs ahead of /v1 work


def test_building_the_llm_config_does_not_start_ray():
    import ray

    from serving.app import detector_llm_config
    from serving.detect import AdapterInfo

    assert not ray.is_initialized()
    detector_llm_config(ServeConfig(), "/nonexistent/model", AdapterInfo("logrl-detector", "v1", "/a/v1", 8))
    assert not ray.is_initialized()


def test_autoscaling_replaces_the_fixed_count_and_capacity_counts_its_minimum(cluster):
    from serving.app import replica_count_config
    from serving.config import AutoscalingConfig

    assert replica_count_config(ServeConfig(num_replicas=3)) == {"num_replicas": 3}
    scaled = ServeConfig(autoscaling=AutoscalingConfig(min_replicas=2, max_replicas=4, target_ongoing_requests=6))
    assert replica_count_config(scaled)["autoscaling_config"] == {
        "min_replicas": 2,
        "initial_replicas": 2,
        "max_replicas": 4,
        "target_ongoing_requests": 6,
    }
    launch.check_capacity(scaled)  # 2 x (1 + 1) = 4 <= 8
    with pytest.raises(RuntimeError, match="cannot place 5 detector"):
        launch.check_capacity(ServeConfig(autoscaling=AutoscalingConfig(min_replicas=5, max_replicas=5)))


def test_autoscaling_bounds_are_checked():
    from pydantic import ValidationError

    from serving.config import AutoscalingConfig

    with pytest.raises(ValidationError, match=r"max_replicas \(1\) < min_replicas \(2\)"):
        AutoscalingConfig(min_replicas=2, max_replicas=1)

"""Closed by default: a local cluster `logrl serve` starts listens on loopback only, with Ray's token auth on.

The last test runs the real command in a subprocess (a fresh Ray, Serve and vLLM on the tiny model), lists the
listening sockets of the process tree it started, and fails on any bind beyond loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.environment import RAY_LOOPBACK_ENV, SERVE_PROXY_MIDDLEWARES_ENV, local_cluster_env
from serving.proxy_guard import ProxyGuard, is_loopback, proxy_route_allowed

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "closed-test-key"


def test_a_local_cluster_gets_loopback_a_fresh_token_and_the_proxy_guard():
    first, second = local_cluster_env({}), local_cluster_env({})
    assert first[RAY_LOOPBACK_ENV] == "0" and first[SERVE_PROXY_MIDDLEWARES_ENV].startswith("serving.proxy_guard:")
    assert len(first["RAY_AUTH_TOKEN"]) == 64 and first["RAY_AUTH_TOKEN"] != second["RAY_AUTH_TOKEN"]
    assert "RAY_AUTH_MODE" not in first  # ray.init turns token auth on itself for a new cluster
    # What the user set wins: their token, their opt-out of token auth, their own loopback choice.
    assert "RAY_AUTH_TOKEN" not in local_cluster_env({"RAY_AUTH_TOKEN_PATH": "/run/token"})
    assert "RAY_AUTH_TOKEN" not in local_cluster_env({"RAY_AUTH_MODE": "disabled"})
    assert RAY_LOOPBACK_ENV not in local_cluster_env({RAY_LOOPBACK_ENV: "1"})


def test_only_the_health_probe_from_loopback_reaches_serves_own_routes():
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(host) for host in ("192.0.2.7", "::ffff:192.0.2.7", "testclient", "", None))
    assert proxy_route_allowed("/-/healthz", "127.0.0.1") and not proxy_route_allowed("/-/healthz", "192.0.2.7")
    assert not proxy_route_allowed("/-/routes", "127.0.0.1")
    assert proxy_route_allowed("/detect", "192.0.2.7") and proxy_route_allowed("/v1/models", None)

    async def call(path: str, client: tuple[str, int]) -> tuple[int, bytes]:
        sent = []

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"success"})

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": client}
        await ProxyGuard(inner)(scope, None, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    assert asyncio.run(call("/-/healthz", ("127.0.0.1", 5000))) == (200, b"success")
    status, body = asyncio.run(call("/-/routes", ("127.0.0.1", 5000)))
    assert status == 404 and json.loads(body)["error"]["message"] == "no route /-/routes"
    assert asyncio.run(call("/-/healthz", ("192.0.2.7", 5000)))[0] == 404


def _listening(pid: int) -> list[tuple[str, int, int, str]]:
    """(address, port, pid, process name) of every TCP listening socket of `pid` and its descendants."""
    import psutil

    root = psutil.Process(pid)
    found = []
    for process in [root, *root.children(recursive=True)]:
        try:
            name = process.name()
            sockets = process.net_connections(kind="inet")
        except psutil.Error:  # a worker that just exited
            continue
        found += [(s.laddr.ip, s.laddr.port, process.pid, name) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


def _stop_tree(pid: int) -> None:
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    tree = [*root.children(recursive=True), root]
    for process in tree:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(tree, timeout=30)


@pytest.mark.ray
@pytest.mark.slow
def test_logrl_serve_listens_on_loopback_only_with_ray_token_auth(
    tiny_model_and_adapter, miner_path, tmp_path, free_port
):
    import httpx

    model_dir, adapter_dir = tiny_model_and_adapter
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(miner_path, data_dir / "miner_state.json")
    (data_dir / "summary.json").write_text("{}")  # the data stage counts as done: serving reads only the miner
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env |= {
        "PYTHONPATH": str(REPO_ROOT),
        "LOGRL_API_KEYS": API_KEY,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    overrides = {
        "data.output_dir": data_dir,
        "model.path": model_dir,
        "model.build_tiny": "false",
        "serve.auth": "enabled",
        "serve.port": port,
        "serve.max_new_tokens": 24,
        "serve.fast_max_new_tokens": 8,
        "serve.request_timeout_s": 60,
    }
    command = [sys.executable, "-m", "cluster.cli", "serve", "--adapter", str(adapter_dir)]
    command += [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while "[serve] http://" not in log.read_text(errors="replace"):
            assert server.poll() is None, f"logrl serve exited {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"logrl serve not up after 600s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        url = f"http://127.0.0.1:{port}"
        binds = _listening(server.pid)
        print("\nlistening sockets of `logrl serve`'s process tree:")
        for address, bound_port, pid, name in sorted(binds, key=lambda b: b[3]):
            print(f"  {address}:{bound_port}  {name} (pid {pid})")
        assert any(bound_port == port for _, bound_port, _, _ in binds)  # the tree was listed, proxy included
        assert len({pid for _, _, pid, _ in binds}) >= 5  # GCS, raylet, agents, controller, proxy, replica
        open_binds = [bind for bind in binds if not is_loopback(bind[0])]
        assert open_binds == [], f"listening beyond loopback: {open_binds}"

        # Ray's token auth is on: its HTTP agents refuse a request without the cluster's token.
        agents = [b for b in binds if b[3] in ("ray::DashboardAgent", "ray::RuntimeEnvAgent")]
        refusals = []
        for address, agent_port, _, _ in agents:
            try:
                host = f"[{address}]" if ":" in address else address
                refusals.append(httpx.get(f"http://{host}:{agent_port}/", timeout=5).status_code)
            except httpx.HTTPError:
                continue  # a gRPC port: no HTTP answer
        assert 401 in refusals, refusals

        # Serve's own routes: /-/routes is closed, the health probe answers loopback; the API needs a key.
        routes = httpx.get(f"{url}/-/routes", timeout=30)
        assert routes.status_code == 404 and routes.json()["error"]["code"] == 404
        assert httpx.get(f"{url}/-/healthz", timeout=30).status_code == 200
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
        models = httpx.get(f"{url}/v1/models", timeout=30, headers={"Authorization": f"Bearer {API_KEY}"})
        assert models.status_code == 200 and "logrl-detector" in {card["id"] for card in models.json()["data"]}

        # A service manager's SIGTERM stops the app and the cluster it started.
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        assert "[serve] stopped" in log.read_text(errors="replace")
    finally:
        _stop_tree(server.pid)

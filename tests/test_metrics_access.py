"""Who may read the metrics (issue 17, point 7): the API's GET /metrics and the worker master's
(WORKER_METRICS_PORT) ask for an API key (any role) when keys are configured, unless
METRICS_PUBLIC=true; /health, /ready, /healthz and /schema stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from queue_system.config.settings import load_settings
from queue_system.storage.keys import Keys
from queue_system.testing import free_port
from queue_system.worker.instance import metrics_dir, status_dir
from queue_system.worker.launch import metrics_keys, metrics_throttle
from queue_system.worker.master import Master
from tests.e2e import support
from tests.support.api import app_client, assert_problem

WRITE = "metrics-write-key-0123456789"
READ = "metrics-read-key-0123456789"
KEYS = {"API_KEYS": WRITE, "API_READ_KEYS": READ}


def test_api_metrics_need_a_key_any_role(redis_client: redis.Redis, redis_url: str) -> None:
    with app_client(redis_url, **KEYS) as c:
        refused = c.get("/metrics")
        assert_problem(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "queue_system_api" not in refused.text
        assert c.get("/metrics", headers={"X-API-Key": "not-a-key-0123456789"}).status_code == 401
        for key in (READ, WRITE):
            scraped = c.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert scraped.status_code == 200 and "queue_system_redis_up" in scraped.text
        for path in ("/health", "/ready", "/healthz", "/schema/openapi.json", "/dashboard/login"):
            assert c.get(path).status_code == 200, path


@pytest.mark.parametrize("env", [{**KEYS, "METRICS_PUBLIC": "true"}, {}])
def test_api_metrics_open_when_public_or_without_keys(
    redis_client: redis.Redis, redis_url: str, env: dict[str, str]
) -> None:
    with app_client(redis_url, **env) as c:
        assert c.get("/metrics").status_code == 200


@pytest.fixture
def worker_master(tmp_path: Path) -> Iterator[tuple[Master, str]]:
    for directory in (status_dir(tmp_path), metrics_dir(tmp_path)):
        directory.mkdir(parents=True)
    keys = metrics_keys(load_settings(KEYS))
    assert keys is not None
    port = free_port()
    master = Master(tmp_path, processes=1, health_port=free_port(), metrics_port=port, metrics_keys=keys)
    master.start()
    try:
        yield master, f"http://127.0.0.1:{port}/metrics"
    finally:
        master.stop()


def test_worker_metrics_need_a_key_any_role(worker_master: tuple[Master, str]) -> None:
    master, url = worker_master
    refused = httpx.get(url, timeout=5)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(url, headers={"X-API-Key": "wrong-key-0123456789"}, timeout=5).status_code == 401
    for key in (READ, WRITE):
        assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code == 200
    # /health stays open for probes (it answers 503 here: no worker process reports to it).
    health = httpx.get(f"http://127.0.0.1:{master.health_port}/health", timeout=5)
    assert health.status_code in (200, 503)


def test_worker_metrics_keys_follow_the_settings() -> None:
    assert metrics_keys(load_settings({})) is None  # no keys: open, as the API is
    assert metrics_keys(load_settings({**KEYS, "METRICS_PUBLIC": "true"})) is None
    assert metrics_keys(load_settings({**KEYS, "API_AUTH": "disabled"})) is None
    with pytest.raises(ValueError, match="API_KEYS"):
        metrics_keys(load_settings({"API_KEYS": "short"}))


def test_wrong_keys_on_the_worker_metrics_port_are_locked_out_like_the_apis(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    # Found by hand: 200 wrong keys to WORKER_METRICS_PORT in 4 s, every one a 401 and the valid
    # key still let in after: a second door to guess the API's keys at full speed.
    for directory in (status_dir(tmp_path), metrics_dir(tmp_path)):
        directory.mkdir(parents=True)
    settings = load_settings({**KEYS, "REDIS_URL": redis_url, "API_AUTH_FAILURES": "3/min"})
    keys = metrics_keys(settings)
    port = free_port()
    master = Master(tmp_path, 1, 0, port, keys, metrics_throttle(settings, keys))
    master.start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        assert httpx.get(url, timeout=5).status_code == 401  # a missing key is not a guess
        codes = [httpx.get(url, headers={"X-API-Key": f"guess-{i}"}, timeout=5).status_code for i in range(4)]
        assert codes == [401, 401, 429, 429]
        locked = httpx.get(url, headers={"Authorization": f"Bearer {READ}"}, timeout=5)
        assert locked.status_code == 429 and 1 <= int(locked.headers["retry-after"]) <= 60
    finally:
        master.stop()
    # The lock is the API's own record of that address, so every API process honours it too.
    assert redis_client.hget(Keys().auth_failures("127.0.0.1"), "strikes") == "1"


def test_a_production_worker_without_keys_refuses_to_serve_metrics_open(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    # Found by hand: `ENV=production queue-system worker` without API_KEYS (compose gave the
    # worker none) served GET /metrics to anyone on 0.0.0.0, silently; the API refuses to start.
    production = {"ENV": "production", "WORKER_METRICS_PORT": "9191"}
    with pytest.raises(ValueError, match="METRICS_PUBLIC=true or WORKER_METRICS_PORT=0"):
        metrics_keys(load_settings(production))
    for opened in ({"METRICS_PUBLIC": "true"}, {"WORKER_METRICS_PORT": "0"}, {"API_AUTH": "disabled"}):
        assert metrics_keys(load_settings({**production, **opened})) is None
    assert metrics_keys(load_settings({**production, **KEYS})) is not None
    worker = support.launch_worker(redis_url, tmp_path, "worker-production", ENV="production")
    try:
        assert worker.wait(30) == 2
    finally:
        worker.stop()
    assert "METRICS_PUBLIC=true" in worker.log() and "worker ready" not in worker.log()

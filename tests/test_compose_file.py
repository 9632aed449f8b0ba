"""docker-compose.yml names only what exists: the settings it passes are in settings.SPEC (with
defaults that parse), the commands and scripts its services run are in the images and the CLI,
and the ports it publishes or probes are the ones the services listen on. No Docker needed
(`make docker-test` runs the file for real)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from queue_system.cli.main import main
from queue_system.config.settings import SPEC, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = ("api", "worker")
SETTINGS = {var.name: var for var in SPEC}
# Variables compose itself reads (published address and port, the stop grace): not settings of
# the services, so each must be documented in .env.example instead.
COMPOSE_ONLY = {"API_BIND", "API_PORT_PUBLISHED", "WORKER_STOP_GRACE"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolations() -> list[tuple[str, str | None]]:
    text = (ROOT / "docker-compose.yml").read_text()
    return [(m[1], m[2]) for m in INTERPOLATION.finditer(text)]


def dockerfile(service: str) -> str:
    return (ROOT / str(SERVICES[service]["build"]["dockerfile"])).read_text()


def instruction(text: str, name: str) -> list[str]:
    """The JSON-array argument of the last `name` instruction (ENTRYPOINT, CMD...)."""
    lines = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    assert lines, name
    return list(yaml.safe_load(lines[-1][len(name) + 1 :]))


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def resolved(value: str) -> str:
    """A compose value with every `${X:-default}` replaced by its default."""
    return INTERPOLATION.sub(lambda m: str(m[2] or ""), value)


@pytest.mark.parametrize("service", OURS)
def test_every_environment_variable_is_a_setting(service: str) -> None:
    env = environment(service)
    assert env, service
    unknown = sorted(set(env) - set(SETTINGS))
    assert not unknown, f"{service}: not in settings.SPEC: {unknown}"
    # With the defaults compose fills in, the settings load (each value parses).
    settings = load_settings({k: resolved(v) for k, v in env.items() if k in SETTINGS})
    assert settings.redis_url == "redis://redis:6379/0"


def test_every_interpolated_variable_is_a_setting_or_documented_for_compose() -> None:
    example = (ROOT / ".env.example").read_text()
    for name, default in interpolations():
        if name in COMPOSE_ONLY:
            assert re.search(rf"^{name}=", example, re.M), f"{name}: not in .env.example"
            continue
        assert name in SETTINGS, f"${{{name}}}: not in settings.SPEC"
        SETTINGS[name].value(default)  # the default compose uses is a valid value (ConfigError if not)
        assert re.search(rf"^{name}=", example, re.M), f"{name}: not in .env.example"


@pytest.mark.parametrize("service", OURS)
def test_entry_points_are_the_cli_and_its_commands(service: str) -> None:
    text = dockerfile(service)
    entry, command = instruction(text, "ENTRYPOINT"), instruction(text, "CMD")
    assert entry == ["tini", "--", "queue-system"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'queue-system = "queue_system.cli.main:main"' in pyproject
    assert command == [service] and service in main.commands
    assert "command" not in SERVICES[service] and "entrypoint" not in SERVICES[service]


@pytest.mark.parametrize("service", OURS)
def test_healthchecks_run_the_health_script_against_the_health_endpoints(service: str) -> None:
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    python, script, check = test[1:]
    assert python == "python" and check == service
    # The script is copied into the image at the path compose runs it from.
    assert f"COPY docker/healthcheck.py {script}" in dockerfile(service)
    source = (ROOT / "docker" / "healthcheck.py").read_text()
    assert f'"{check}": {check}' in source
    port_variable = {"api": "API_PORT", "worker": "WORKER_HEALTH_PORT"}[service]
    default = SETTINGS[port_variable].default
    # The script probes the port the service listens on, by the same variable and default.
    assert f'os.environ.get("{port_variable}") or "{default}"' in source
    env_port = resolved(environment(service).get(port_variable, default or ""))
    assert env_port == default


def test_ports_published_are_those_the_services_listen_on() -> None:
    api_port = SETTINGS["API_PORT"].default
    published = [resolved(p) for p in SERVICES["api"]["ports"]]
    assert published == [f"127.0.0.1:8080:{api_port}"]
    assert f"EXPOSE {api_port}" in dockerfile("api")
    # The worker scales (`--scale worker=N`): nothing of it is published on the host.
    assert "ports" not in SERVICES["worker"]
    assert "container_name" not in SERVICES["worker"]


def test_the_worker_s_stop_grace_outlasts_its_own_drain() -> None:
    grace = next(d for n, d in interpolations() if n == "WORKER_STOP_GRACE")
    grace_ms = SETTINGS["WORKER_REQUEST_TIMEOUT"].value(grace)  # a duration, parsed the same way
    request_timeout_ms = load_settings({}).worker.request_timeout_ms
    assert grace_ms > request_timeout_ms + 30_000


def test_build_files_exist() -> None:
    for service in OURS:
        build = SERVICES[service]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert shlex.split(" ".join(SERVICES["redis"]["command"]))[0] == "redis-server"


# ---- docker-compose.ha.yml: the replicated topology laid over docker-compose.yml
HA: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text())
HA_SERVICES: dict[str, Any] = HA["services"]
MONITOR = re.compile(r"'sentinel monitor (\S+) (\S+) (\d+) (\d+)'")


def sentinel_monitors() -> dict[str, tuple[str, str, int, int]]:
    """sentinel service -> (master name, host, port, quorum) from the config its command writes."""
    found = {}
    for name, service in HA_SERVICES.items():
        command = " ".join(service.get("command") or [])
        if "--sentinel" in command:
            match = MONITOR.search(command)
            assert match, f"{name}: no `sentinel monitor` line"
            found[name] = (match[1], match[2], int(match[3]), int(match[4]))
    return found


@pytest.mark.parametrize("service", OURS)
def test_ha_services_reach_redis_through_the_sentinels_the_file_runs(service: str) -> None:
    env = {**environment(service), **{k: str(v) for k, v in HA_SERVICES[service]["environment"].items()}}
    unknown = sorted(set(env) - set(SETTINGS))
    assert not unknown, f"{service}: not in settings.SPEC: {unknown}"
    settings = load_settings({k: resolved(v) for k, v in env.items()})
    monitors = sentinel_monitors()
    assert {host for host, _ in settings.sentinels} == set(monitors)
    assert all(port == 26379 for _, port in settings.sentinels)
    assert {m[0] for m in monitors.values()} == {settings.sentinel_master}
    assert settings.min_replicas >= 1  # a 201 survives the failover this file is for
    # Started after every data node and sentinel is healthy.
    assert set(HA_SERVICES[service]["depends_on"]) == set(HA_SERVICES) - set(OURS) - {"redis"}


def test_ha_sentinels_watch_the_first_primary_with_a_majority_quorum() -> None:
    monitors = sentinel_monitors()
    assert len(monitors) == 3
    for _, host, port, quorum in monitors.values():
        assert (host, port) == ("redis", 6379)  # docker-compose.yml's redis service
        assert len(monitors) // 2 < quorum <= len(monitors)


def test_ha_replicas_follow_the_first_primary_and_every_data_node_persists() -> None:
    nodes = {"redis": HA_SERVICES["redis"]} | {n: s for n, s in HA_SERVICES.items() if "replica" in n}
    assert len(nodes) == 3
    for name, node in nodes.items():
        args = node["command"]
        assert args[0] == "redis-server"
        pairs = dict(zip(args[1::2], args[2::2], strict=False))
        assert pairs["--appendonly"] == "yes" and pairs["--maxmemory-policy"] == "noeviction", name
        if name != "redis":
            assert args[-3:] == ["--replicaof", "redis", "6379"], name
            assert node["image"] == SERVICES["redis"]["image"]  # the same local image

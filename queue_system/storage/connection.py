"""Every Redis client of the package is built here, from one `RedisTarget`.

A target is either a URL (`redis://`, `rediss://`, `unix://`: one server, or a managed Redis's
failover endpoint, which moves by itself) or Sentinel: a list of sentinels, the service name they
watch, and the URL still carrying the data nodes' password, username, db and `rediss://` TLS (its
host and port are ignored: the sentinels name the primary). redis-py has no Sentinel URL, so a
Sentinel target is `Sentinel(...).master_for(name)`: each new connection asks the sentinels where
the primary is, and a connection that finds its server demoted (`READONLY`) is dropped and raises
`ConnectionError("The previous master is now a slave")`, so the next one finds the new primary.

`check_durability` reads what the connected Redis says about eviction, persistence and replicas,
for the warnings a process logs at start (Redis's configuration is the operator's: never refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from redis.connection import UnixDomainSocketConnection, parse_url

# How long a sentinel may take to answer "where is the primary": a dead or stopped one is skipped
# after this, and the next asked.
SENTINEL_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the data is: `url` alone, or the sentinels that know (then `url` gives the rest)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None  # the service name the sentinels watch (REDIS_SENTINEL_MASTER)
    sentinel_password: str | None = field(default=None, repr=False)  # secret: never logged

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)

    def describe(self) -> str:
        """For log lines: never a password."""
        if self.sentinel:
            where = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"Sentinel service {self.master!r} via {where}"
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (`[v6]:port` too) -> ((host, port), ...). Raises ValueError."""
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{item!r} is not host:port (e.g. 10.0.0.5:26379)")
        found.append((host, int(port)))
    if not found:
        raise ValueError("no sentinel listed (host:port,host:port,...)")
    return tuple(found)


def as_target(target: RedisTarget | str) -> RedisTarget:
    return target if isinstance(target, RedisTarget) else RedisTarget(target)


def _node_kwargs(url: str) -> dict[str, Any]:
    """What REDIS_URL says about the data nodes besides their address: auth, db, TLS options."""
    kwargs: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    if kwargs.pop("connection_class", None) is UnixDomainSocketConnection:
        raise ValueError("REDIS_URL: unix:// cannot go with REDIS_SENTINELS (the sentinels name a host)")
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    kwargs.pop("path", None)
    return kwargs


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


def sync_client(target: RedisTarget | str, **options: Any) -> redis.Redis:
    """A redis-py client of the primary; `options`: the client's own (timeouts, decoding ...)."""
    target = as_target(target)
    if not target.sentinel:
        return redis.Redis.from_url(target.url, **options)
    node = _node_kwargs(target.url)
    ssl = target.url.startswith("rediss://")
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target)
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.master or "", ssl=ssl, **node, **options
    )
    return client


def async_client(target: RedisTarget | str, **options: Any) -> aioredis.Redis:
    """`sync_client`'s twin for the API's event loop (redis.asyncio)."""
    target = as_target(target)
    if not target.sentinel:
        return aioredis.Redis.from_url(target.url, **options)  # type: ignore[no-any-return]
    node = _node_kwargs(target.url)
    ssl = target.url.startswith("rediss://")
    sentinel = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target)
    )
    client: aioredis.Redis = sentinel.master_for(target.master or "", ssl=ssl, **node, **options)
    return client


def check_durability(client: redis.Redis, min_replicas: int = 0) -> list[str]:
    """Warnings about what the connected Redis would lose or drop; [] when it is configured as
    docs/operations/high-availability.md recommends. Reads INFO (allowed on managed Redis) and, where it is
    allowed, CONFIG GET."""
    warnings: list[str] = []
    info: dict[str, Any] = client.info("all")  # type: ignore[assignment]
    policy = str(info.get("maxmemory_policy", ""))
    if policy and policy != "noeviction":
        warnings.append(
            f"Redis evicts keys when full (maxmemory-policy {policy}): it may drop tasks and queued "
            "messages; set maxmemory-policy noeviction (a full Redis then refuses writes: 503s)"
        )
    aof = str(info.get("aof_enabled", "0")) == "1"
    save = _config(client, "save")
    if not aof and save == "":
        warnings.append(
            "Redis does not persist (appendonly no, no save points): a restart loses every task; "
            "set appendonly yes, appendfsync everysec"
        )
    elif not aof:
        warnings.append(
            f"Redis persists by snapshots at most (save {save or 'unknown'!r}, appendonly no): a "
            "crash loses what was written since the last snapshot; set appendonly yes, appendfsync "
            "everysec"
        )
    replicas = int(info.get("connected_slaves", 0) or 0)
    if min_replicas > replicas:
        warnings.append(
            f"REDIS_MIN_REPLICAS={min_replicas} but the primary has {replicas} replica(s) connected: "
            "submits answer 503 until enough replicas acknowledge"
        )
    return warnings


def _config(client: redis.Redis, name: str) -> str | None:
    try:
        reply: dict[Any, Any] = client.config_get(name)  # type: ignore[assignment]
    except redis.ResponseError:  # CONFIG renamed or disabled (managed Redis): INFO only
        return None
    value = reply.get(name, reply.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else value

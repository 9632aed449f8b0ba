"""The key space (storage/keys.py): no value, of any character, can spell another record's key."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.domain.queues import QUEUES
from queue_system.storage import dramatiq_wire, keys, scripts
from queue_system.storage.keys import FAMILIES, FIXED, Keys

K = Keys()
ID_ALPHABET = string.ascii_letters + string.digits + "._:-"
ids = st.text(ID_ALPHABET, min_size=1, max_size=128)
anything = st.text(min_size=0, max_size=64)  # a destination will be a whole URL: any text at all
suffixed = st.builds(
    lambda v, s: v + s, ids, st.sampled_from([":history", ":payload", ":inflight", ":parked"])
)

# Every key built from a value: family -> (how Keys builds it, the values it may be given).
BUILDERS: dict[str, tuple[Callable[[str], str], st.SearchStrategy[str]]] = {
    "task": (K.task, ids | suffixed),
    "history": (K.history, ids | suffixed),
    "payload": (K.payload, ids | suffixed),
    "status_index": (lambda v: K.index(status=v), anything.filter(bool)),
    "type_index": (lambda v: K.index(type_=v), anything.filter(bool)),
    "dest": (K.dest, anything | suffixed),
    "inflight": (K.dest_inflight, anything | suffixed),
    "parked": (K.dest_parked, anything | suffixed),
    "endpoint": (K.endpoint, anything | suffixed),
    "ep_inflight": (K.endpoint_inflight, anything | suffixed),
    "ep_parked": (K.endpoint_parked, anything | suffixed),
    "stats": (K.stats_minute, anything),
    "session": (K.session, anything),
    "ratelimit": (K.rate_bucket, anything),
    "inbox": (K.inbox, anything),
    "sched": (K.sched, anything),
    "sched_runs": (K.sched_runs, anything),
    "held": (K.held, anything),
    "op": (K.op, anything),
}
# Families whose value Keys derives itself (a digest): (how to build it, what it is built from).
DERIVED: dict[str, tuple[Callable[[str], str], st.SearchStrategy[str]]] = {
    "authfail": (K.auth_failures, anything),
}
FIXED_KEYS = {
    "all_index": K.index(),
    "schedule": K.schedule,
    "leases": K.leases,
    "expiry": K.expiry,
    "dests": K.dests,
    "dests_due": K.dests_due,
    "endpoints": K.endpoints,
    "endpoints_due": K.endpoints_due,
    "scheds": K.scheds,
    "scheds_due": K.scheds_due,
    "ops": K.ops,
    "ops_running": K.ops_running,
    "mailbox": K.mailbox,
    "inboxes": K.inboxes,
    "probe": K.probe,
    "layout": K.layout,
    "layout_lock": K.layout_lock,
    "paused_queues": K.paused_queues,
}
built = st.sampled_from(sorted(BUILDERS)).flatmap(lambda f: st.tuples(st.just(f), BUILDERS[f][1]))


def test_every_family_and_fixed_key_is_covered() -> None:
    assert set(BUILDERS) | set(DERIVED) | {"dramatiq"} == set(FAMILIES)
    assert set(FIXED_KEYS) == set(FIXED)
    # Every public name of Keys is one of them, Dramatiq's (below) or a helper.
    public = {n for n in dir(Keys) if not n.startswith("_")}
    dramatiq = {"dramatiq_namespace", "queue", "messages", "dead_queue", "acks", "heartbeats"}
    builders = {"task", "history", "payload", "index", "dest", "dest_inflight", "dest_parked"}
    builders |= {"endpoint", "endpoint_inflight", "endpoint_parked"}
    builders |= {"stats_minute", "session", "rate_bucket", "auth_failures", "inbox", "parse", "prefix"}
    builders |= {"sched", "sched_runs", "held", "op"}
    assert public == builders | dramatiq | (set(FIXED) - {"all_index"}), public


def test_no_head_is_a_prefix_of_another_and_no_fixed_key_starts_with_one() -> None:
    heads = list(FAMILIES.values())
    for a in heads:
        for b in heads:
            assert a == b or not b.startswith(a), (a, b)
        for fixed in FIXED.values():
            assert not fixed.startswith(a), (a, fixed)
    assert len(set(FIXED.values())) == len(FIXED)


@given(built, built)
@settings(max_examples=2_000)
def test_two_keys_are_equal_only_for_the_same_family_and_value(
    one: tuple[str, str], two: tuple[str, str]
) -> None:
    key_one, key_two = BUILDERS[one[0]][0](one[1]), BUILDERS[two[0]][0](two[1])
    assert (key_one == key_two) == (one == two), (one, two)
    assert key_one not in FIXED_KEYS.values()


@given(built)
@settings(max_examples=1_000)
def test_parse_undoes_every_key(pair: tuple[str, str]) -> None:
    family, value = pair
    assert K.parse(BUILDERS[family][0](value)) == (family, value)


@given(st.sampled_from(sorted(DERIVED)).flatmap(lambda f: st.tuples(st.just(f), DERIVED[f][1])), built)
def test_a_derived_key_is_in_its_own_family(derived: tuple[str, str], other: tuple[str, str]) -> None:
    family, source = derived
    key = DERIVED[family][0](source)
    assert (K.parse(key) or ("",))[0] == family
    assert key != BUILDERS[other[0]][0](other[1]) and key not in FIXED_KEYS.values()


def test_parse_names_the_fixed_keys_and_nothing_foreign() -> None:
    for name, key in FIXED_KEYS.items():
        assert K.parse(key) == (name, "")
    assert K.parse("other:task:x") is None and K.parse("qs:nothing") is None


def test_dramatiqs_keys_of_our_queues_are_all_distinct() -> None:
    # Dramatiq spells `{queue}.msgs`, `{queue}.DQ`, `{queue}.XQ`: distinct only because a queue
    # is one of ours (the API refuses any other name: below).
    queues = dramatiq_wire.CONSUMED
    names = [K.queue(q) for q in queues] + [K.messages(q) for q in queues] + [K.dead_queue(q) for q in queues]
    names += [K.acks("broker", q) for q in queues] + [K.heartbeats]
    assert len(set(names)) == len(names)
    assert all(K.parse(n) == ("dramatiq", n.removeprefix("qs:dramatiq:")) for n in names)


@given(st.lists(ids, min_size=1, max_size=5))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_lua_builds_the_same_names_as_python(redis_client: redis.Redis, values: list[str]) -> None:
    probe = scripts.render_prelude() + (
        "local out = {}\n"
        "for _, v in ipairs(ARGV) do\n"
        "  for _, k in ipairs({task_key(v), history_key(v), payload_key(v), dest_key(v), inflight_key(v),"
        " parked_key(v), type_index(v), status_index(v)}) do table.insert(out, k) end\n"
        "end\nreturn out\n"
    )
    got: Any = redis_client.eval(probe, 1, K.prefix, *values)
    builders = (K.task, K.history, K.payload, K.dest, K.dest_inflight, K.dest_parked)
    want = [key for v in values for key in (*(b(v) for b in builders), K.index(type_=v), K.index(status=v))]
    assert got == want


@pytest.fixture
def api(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as client:
        yield client


@pytest.mark.parametrize("queue", ["default.DQ", "default.msgs", "priority.XQ", "__acks__", "default:x", ""])
def test_a_queue_that_could_spell_dramatiqs_keys_is_a_422(api: TestClient[Any], queue: str) -> None:
    response = api.post("/api/v1/tasks", json={"type": "echo", "payload": "x", "queue": queue})
    assert response.status_code == 422 and response.json()["field"] == "queue", response.text


@given(queue=st.text(max_size=40).filter(lambda q: q not in QUEUES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_other_queue_name_is_a_422(api: TestClient[Any], queue: str) -> None:
    response = api.post("/api/v1/tasks", json={"type": "echo", "payload": "x", "queue": queue})
    assert response.status_code == 422 and response.json()["field"] == "queue", response.text


STORAGE_PAGE = Path(__file__).parents[1] / "docs" / "architecture" / "storage.md"


@pytest.mark.parametrize("where", ["storage/keys.py", "docs/architecture/storage.md"])
def test_every_family_and_fixed_key_is_documented(where: str) -> None:
    text = keys.__doc__ or "" if where.endswith(".py") else STORAGE_PAGE.read_text()
    missing = [f"{{p}}:{head}{{...}}" for head in FAMILIES.values() if f"{{p}}:{head}{{" not in text]
    missing += [
        f"{{p}}:{fixed}"
        for fixed in FIXED.values()
        if not re.search(rf"\{{p\}}:{re.escape(fixed)}(?![\w:{{-])", text)
    ]
    assert not missing, f"{where} does not list {missing}"

"""Schedules and queues under a stranger's input: every field over its whole input space (Hypothesis),
on the real app and a real Redis. Each test names the class of input it covers; none may answer 500."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import msgspec
import pytest
import redis
from cronsim import CronSim
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.config.parsing import parse_duration_ms
from queue_system.config.settings import SPEC, Var
from queue_system.domain.schedules import (
    ALIASES,
    MAX_CATCH_UP,
    MISSED_AFTER_MS,
    CatchUp,
    Plan,
    Timing,
    TimingError,
    plan,
    timing,
)
from queue_system.errors import ConfigError
from queue_system.service.schedules import DUE_BATCH, fire_due
from queue_system.storage import scripts
from queue_system.storage.keys import Keys
from queue_system.storage.schedules import ScheduleRecord, ScheduleStore, Template, save_args
from tests.support.dashboard import make_client

ECHO = {"type": "echo", "payload": "tick"}
# Names a zoneinfo lookup treats as files: paths, host-dependent links, leap-second and POSIX
# variants, names longer than a file name may be, and any text at all.
ZONE_TRICKS = st.sampled_from([
    "../../etc/passwd", "/etc/localtime", "localtime", "posixrules", "right/UTC", "posix/Europe/Berlin",
    "right/Europe/Berlin", "Europe/../UTC", "zone.tab", "tzdata.zi", "leapseconds", "UTC\x00", "a" * 300,
    "Europe/" + "x" * 400, "Local", "",
])  # fmt: skip
ZONE_TEXT = st.one_of(ZONE_TRICKS, st.text(max_size=40), st.text(min_size=200, max_size=2000))


def _iana() -> set[str]:
    return available_timezones() - {"localtime"}


@settings(max_examples=300, deadline=None)
@given(ZONE_TEXT)
def test_a_timezone_is_an_iana_name_or_a_timing_error(zone: str) -> None:
    """Before: a 256+ character name raised OSError (a 500 from POST /schedules), and `localtime`
    (the host's own zone: another instant on each worker host), `right/UTC` (leap seconds: ticks
    27 s off) or `posix/...` were accepted."""
    try:
        t = timing("0 3 * * *", zone or None, None)
    except TimingError as exc:
        refused: TimingError | None = exc
    else:
        refused = None
        assert t.timezone in _iana()
    assert refused is None or refused.field == "timezone"


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[TestClient[Any]]:
    with make_client(redis_url, None) as test_client:  # the API and an open dashboard
        yield test_client


@pytest.fixture
def api(client: TestClient[Any], redis_client: redis.Redis) -> TestClient[Any]:
    return client  # each test on an empty Redis


def _problem(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field, response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ZONE_TEXT)
def test_create_with_any_timezone_is_201_or_a_problem_naming_it(api: TestClient[Any], zone: str) -> None:
    answer = api.post("/api/v1/schedules", json={"task": ECHO, "cron": "0 3 * * *", "timezone": zone})
    if answer.status_code == 201:
        assert answer.json()["timezone"] in _iana()
        assert api.delete(f"/api/v1/schedules/{answer.json()['id']}").status_code == 204
    else:
        _problem(answer, 422, "timezone")


CURSORS = st.one_of(
    st.integers(0, 10**30).map(str),  # past int64, and past int64 once the page's limit is added
    st.text(max_size=30),  # superscripts and other scripts' digits pass str.isdigit
    st.sampled_from(
        ["-1", "9223372036854775807", "9223372036854775757", "\u00b2", "\u0663", " 1", "1 ", "0x10"]
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(CURSORS)
def test_any_list_cursor_is_a_page_or_a_400_naming_it(api: TestClient[Any], cursor: str) -> None:
    """Before: a cursor past int64 reached ZRANGE (a 500), an Arabic-Indic 3 read as 3, a superscript
    2 broke int() (a 500 on the dashboard's schedules page)."""
    answer = api.get("/api/v1/schedules", params={"cursor": cursor})
    if answer.status_code == 200:
        assert cursor.isascii() and cursor.isdigit()
        assert answer.json() == {"items": [], "next_cursor": None}
    else:
        _problem(answer, 400, "cursor")
    page = api.get("/dashboard/schedules", params={"cursor": cursor})  # a hand-edited link: page one
    assert page.status_code == 200, page.text


NUMBER = st.one_of(
    st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,25})?", fullmatch=True),
    st.from_regex(
        r"[0-9\u0660-\u0669\uff10-\uff19\u00b2.]{1,12}", fullmatch=True
    ),  # Arabic-Indic, fullwidth, ²
)
DURATION_TEXT = st.one_of(
    st.builds(lambda n, u, ws: f"{ws}{n}{u}{ws}", NUMBER, st.sampled_from(["", "ms", "s", "m", "h", "d"]),
              st.sampled_from(["", " "])),
    st.text(max_size=20),
    st.sampled_from(["1.0001s", "2.0000000000001s", "1.99999999999999999999s", "1.1s", "\u0661s", "\uff11s"]),
    st.just("1" * 5000),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(DURATION_TEXT)
def test_a_duration_is_exact_ascii_or_refused(text: str) -> None:
    """Before: an Arabic-Indic or a fullwidth "1s" was 1 s (`\\d` and float() read any script's
    digits), and a fraction of a millisecond was cut: "1.0001s" passed `every`'s check for whole
    seconds as 1000 ms."""
    try:
        ms = parse_duration_ms(text)
    except ValueError:
        return
    assert written_ms(text) == ms


def written_ms(text: str) -> Fraction:
    """What a duration says, read exactly, in ASCII digits only (else an AssertionError)."""
    number = text.strip().rstrip("msdh ")
    assert number.isascii() and number[:1].isdigit(), text
    suffix = text.strip()[len(number) :].strip() or "s"
    return Fraction(number) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[suffix]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(DURATION_TEXT)
def test_every_is_whole_seconds_as_written_or_a_problem_naming_it(api: TestClient[Any], text: str) -> None:
    answer = api.post("/api/v1/schedules", json={"task": ECHO, "every": text})
    if answer.status_code != 201:
        _problem(answer, 422, "every")
        return
    ms = answer.json()["every_ms"]
    assert ms % 1000 == 0 and ms == written_ms(text)
    assert api.delete(f"/api/v1/schedules/{answer.json()['id']}").status_code == 204


def _field(low: int, high: int, extra: list[str]) -> st.SearchStrategy[str]:
    n = st.integers(low, high + 2)  # a little past the range: refused, not a 500
    atom = st.one_of(
        n.map(str),
        st.just("*"),
        st.builds(lambda a, b: f"{a}-{b}", n, n),
        st.builds(lambda s, k: f"{s}/{k}", st.sampled_from(["*", str(low)]), st.integers(0, 100)),
        st.sampled_from(extra) if extra else st.just("*"),
    )
    return st.lists(atom, min_size=1, max_size=3).map(",".join)


CRON_TEXT = st.one_of(
    st.builds(
        lambda *f: " ".join(f),
        _field(0, 59, []),
        _field(0, 23, []),
        _field(1, 31, ["L", "LW", "15W", "L-3"]),
        _field(1, 12, ["FEB", "JAN-MAR"]),
        _field(0, 7, ["1#5", "5L", "MON-FRI", "0#5", "6#4"]),
    ),
    st.sampled_from(["0 0 */30 2 1#5", "0 0 */31 2 1#5", "0 0 */29 2 1#5", "0 0 */30 4 6#5"]),
    st.text(max_size=30),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(CRON_TEXT)
def test_any_cron_is_a_schedule_with_a_next_run_or_a_problem_naming_it(
    api: TestClient[Any], cron: str
) -> None:
    """Before: a cron that parses but never runs ("0 0 */30 2 1#5": the 1st or 31st of February, and
    the fifth Monday: day and weekday both hold in Debian cron when one starts with `*`) was a 500
    on POST and on PATCH."""
    api.delete("/api/v1/schedules/c")  # left by the example before, or none
    assert api.post("/api/v1/schedules", json={"id": "c", "task": ECHO, "every": "1h"}).status_code == 201
    for response in (
        api.post("/api/v1/schedules", json={"task": ECHO, "cron": cron}),
        api.patch("/api/v1/schedules/c", json={"cron": cron}),
    ):
        if response.status_code in (200, 201):
            assert response.json()["next_run_at"] is not None
        else:
            _problem(response, 422, "cron")


def _every_tick(t: Timing, current: int, now: int) -> list[int]:
    """Every tick from `current` to `now`: one CronSim walked from `current`, none skipped."""
    assert t.cron is not None
    ticks = [current]
    start = datetime.fromtimestamp(current / 1000, tz=UTC).astimezone(ZoneInfo(t.timezone))
    for tick in CronSim(ALIASES.get(t.cron, t.cron), start):
        ms = int(tick.timestamp() * 1000)
        if ms > now:
            break
        if ms > ticks[-1]:
            ticks.append(ms)
    return ticks


def _reference(t: Timing, current: int, now: int, policy: CatchUp) -> Plan:
    """The plan decided the slow, obvious way: from every tick between `current` and `now`."""
    ticks, nxt = _every_tick(t, current, now), t.next_after(now)
    if policy is CatchUp.ALL:
        return Plan(ticks[-MAX_CATCH_UP:], nxt)
    if policy is CatchUp.NONE and now - ticks[-1] > MISSED_AFTER_MS:
        return Plan([], nxt)
    return Plan(ticks[-1:], nxt)


CRON_TIMINGS = st.builds(
    lambda c, z: timing(c, z, None),
    st.sampled_from(["* * * * *", "*/5 * * * *", "30 2 * * *", "0 */3 * * 1-5", "15 1,2,3 * * *",
                     "0 0 1 * *", "@hourly", "59 23 31 12 *", "0 0 29 2 *", "*/7 * * * *"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
)  # fmt: skip
START = st.integers(1_577_836_800_000, 2_051_222_400_000)  # 2020..2035


DOWN = st.one_of(
    st.integers(0, 2 * 3_600_000), st.integers(0, 3 * 86_400_000), st.integers(0, 40 * 86_400_000)
)


@settings(max_examples=120, deadline=None)
@given(CRON_TIMINGS, START, DOWN, st.sampled_from(list(CatchUp)))
def test_a_plan_fires_what_walking_every_tick_would(
    t: Timing, start: int, down: int, policy: CatchUp
) -> None:
    """Down from no time to 40 days (across each window the plan looks back by), in DST zones."""
    current = t.next_after(start)
    now = current + down
    assert plan(t, current, now, policy) == _reference(t, current, now, policy)


@settings(max_examples=25, deadline=None)
@given(CRON_TIMINGS, START, st.integers(3, 400), st.sampled_from(list(CatchUp)))
def test_a_plan_after_a_long_downtime_is_quick(t: Timing, start: int, days: int, policy: CatchUp) -> None:
    """Before: the plan built a CronSim for every missed tick, up to 100,000 of them (54 us each):
    a minutely schedule down 70 days took 6 s of its reconciler's tick, and a batch of 100 such
    schedules ten minutes, while leases went unrecovered."""
    current = t.next_after(start)
    now = current + days * 86_400_000
    began = time.perf_counter()
    p = plan(t, current, now, policy)
    assert time.perf_counter() - began < 0.5
    assert p.next_run == t.next_after(now) and all(current <= x <= now for x in p.ticks)
    if p.ticks:
        assert t.next_after(p.ticks[-1]) > now  # the newest tick: none missed after it


NUMERIC = [var for var in SPEC if var.parser.kind in ("integer", "duration", "size")]
FOREIGN_DIGITS = "\u0660\u0661\u0662\u0663\u0664\u0665\u06f5\u0967\uff11\uff15\u00b2\u00b3\u2468"


@pytest.mark.parametrize("var", NUMERIC, ids=lambda v: v.name)
@settings(max_examples=15, deadline=None)
@given(st.text(alphabet=FOREIGN_DIGITS, min_size=1, max_size=4), st.sampled_from(["", "s", "ms", "m", "MiB"]))
def test_a_number_setting_in_another_scripts_digits_is_an_error_naming_it(
    var: Var, digits: str, unit: str
) -> None:
    """Before: WORKER_PROCESSES set to an Arabic-Indic 3 was 3 processes, WORKER_POLL_INTERVAL set to
    an Arabic-Indic "1s" a second: int() and float() read any script's digits, and `\\d` matched."""
    with pytest.raises(ConfigError) as caught:
        var.value(digits + unit)
    assert caught.value.variable == var.name


ZONES_SOME = st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])
PATCHES = st.fixed_dictionaries(
    {},
    optional={
        "cron": st.sampled_from(["0 4 * * *", "*/5 * * * *", "@daily"]),
        "timezone": ZONES_SOME,
        "catch_up": st.sampled_from(["latest", "none", "all"]),
        "paused": st.booleans(),
        "task": st.just({"type": "echo", "payload": "changed"}),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ZONES_SOME, PATCHES)
def test_a_patch_changes_the_fields_it_names_and_keeps_the_others(
    api: TestClient[Any], zone: str, change: dict[str, Any]
) -> None:
    """Before: PATCH {"cron": "0 4 * * *"} on a Europe/Berlin schedule moved it to UTC (a new cron
    dropped the time zone it was read in): hours off, silently."""
    api.delete("/api/v1/schedules/m")
    old = {"id": "m", "task": ECHO, "cron": "30 2 * * *", "timezone": zone, "catch_up": "latest"}
    assert api.post("/api/v1/schedules", json=old).status_code == 201
    answer = api.patch("/api/v1/schedules/m", json=change)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    want = {**old, "paused": False, **change}
    assert {k: got[k] for k in ("cron", "timezone", "catch_up", "paused", "task")} == {
        k: want[k] for k in ("cron", "timezone", "catch_up", "paused", "task")
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "catch_up": st.sampled_from(["latest", "none", "all"]),
            "task": st.just({"type": "echo", "payload": "fixed"}),
            "timezone": st.just("UTC"),  # the zone it has: the same timing
        },
    ).filter(bool)
)
def test_a_patch_that_keeps_the_timing_keeps_the_next_run(
    api: TestClient[Any], redis_client: redis.Redis, change: dict[str, Any]
) -> None:
    """Before: fixing a schedule's task (or its catch_up) while it was due, e.g. before the workers
    come back after an outage, moved its next run past now: the missed ticks never fired, whatever
    `catch_up` said."""
    api.delete("/api/v1/schedules/d")
    body = {"id": "d", "task": ECHO, "cron": "*/5 * * * *", "catch_up": "all"}
    assert api.post("/api/v1/schedules", json=body).status_code == 201
    due = 1_599_999_900_000  # a tick (12:25 UTC): the workers have been down since
    redis_client.hset(Keys().sched("d"), "next_run_at", str(due))
    answer = api.patch("/api/v1/schedules/d", json=change)
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_run_at"] == "2020-09-13T12:25:00.000Z"


def test_one_tick_fires_every_due_schedule_its_budget_allows(redis_client: redis.Redis) -> None:
    """Before: a tick fired 100 due schedules at most (and two worker processes raced for the same
    100), so 3,000 `every: 1s` schedules fired 840 times a second with one process and 1,155 with
    two: each fired every ~3 s, its other ticks dropped as missed."""
    template = msgspec.json.encode(Template("echo", "default", '"x"', "fp", [])).decode()
    for i in range(DUE_BATCH * 5):
        saved = save_args(
            ScheduleRecord(
                id=f"s{i}", body="{}", template=template, cron=None, timezone=None, every_ms=1000,
                catch_up="latest", paused=False, next_run_at=10_000, last_run_at=None, created_at=0,
                last_tasks=[],
            ),
            0,
            create=True,
        )  # fmt: skip
        redis_client.register_script(scripts.SCHEDULE_SAVE)(keys=[Keys().prefix], args=saved)
    store = ScheduleStore(redis_client, Keys())
    assert fire_due(store, 10_500, budget_s=30) == DUE_BATCH * 5
    assert store.due(10_500, 1) == []


JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
ID_TEXT = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:-]{1,130}", fullmatch=True), st.text(max_size=20), st.just("x" * 200)
)
SCHEDULE_BODIES = st.fixed_dictionaries(
    {"task": st.one_of(st.just(ECHO), st.just(ECHO), st.just({"type": "nope"}), JUNK)},
    optional={
        "id": st.one_of(ID_TEXT, JUNK),
        "cron": st.one_of(CRON_TEXT, st.sampled_from(["@hourly", "*/5 * * * *"]), JUNK),
        "every": st.one_of(DURATION_TEXT, JUNK),
        "timezone": st.one_of(ZONE_TEXT, JUNK),
        "catch_up": st.one_of(st.sampled_from(["latest", "none", "all", "ALL", ""]), JUNK),
        "paused": st.one_of(st.booleans(), JUNK),
        "extra": JUNK,
    },
)


NEAR_VALID = st.builds(
    lambda timing_, extra: {"task": ECHO, **timing_, **extra},
    st.one_of(
        st.builds(
            lambda c, z: {"cron": c, "timezone": z},
            st.sampled_from(["@daily", "0 4 * * 1-5", "*/7 * * * *"]),
            ZONES_SOME,
        ),
        st.builds(lambda e: {"every": e}, st.sampled_from(["1s", "90m", "1000ms", " 2 h ", "1.5s", "1d"])),
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "id": ID_TEXT,
            "catch_up": st.sampled_from(["latest", "none", "all"]),
            "paused": st.booleans(),
        },
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(SCHEDULE_BODIES, NEAR_VALID))
def test_any_create_is_a_readable_schedule_or_a_problem_naming_a_field(
    api: TestClient[Any], body: dict[str, Any]
) -> None:
    """Every field at once, each over its whole input space (and the wrong JSON types): a 201 whose
    schedule reads back, lists and deletes, or a 4xx problem naming a field; never a 500."""
    answer = api.post("/api/v1/schedules", json=body)
    event(f"status {answer.status_code}")
    if answer.status_code != 201:
        assert answer.status_code in (409, 422), answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.status_code == 409 or answer.json()["field"], answer.text
        return
    sid = answer.json()["id"]
    location = answer.headers["location"]
    assert api.get(location).json() == answer.json()
    assert sid in [s["id"] for s in api.get("/api/v1/schedules", params={"limit": 500}).json()["items"]]
    assert api.delete(location).status_code == 204


PATCH_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "task": st.one_of(st.just({"type": "echo", "payload": "new"}), st.just({"type": "nope"}), JUNK),
        "cron": st.one_of(CRON_TEXT, st.just("@hourly"), JUNK),
        "every": st.one_of(DURATION_TEXT, st.just("5m"), JUNK),
        "timezone": st.one_of(ZONE_TEXT, ZONES_SOME, JUNK),
        "catch_up": st.one_of(st.sampled_from(["latest", "none", "all", "x"]), JUNK),
        "paused": st.one_of(st.booleans(), JUNK),
        "id": st.just("other"),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([{"cron": "30 2 * * *", "timezone": "Europe/Berlin"}, {"every": "1h"}]), PATCH_BODIES)
def test_any_patch_is_applied_whole_or_a_problem_that_changes_nothing(
    api: TestClient[Any], timing_: dict[str, str], change: dict[str, Any]
) -> None:
    api.delete("/api/v1/schedules/p")
    assert api.post("/api/v1/schedules", json={"id": "p", "task": ECHO, **timing_}).status_code == 201
    before = api.get("/api/v1/schedules/p").json()
    answer = api.patch("/api/v1/schedules/p", json=change)
    event(f"status {answer.status_code}")
    if answer.status_code == 200:
        assert answer.json() == api.get("/api/v1/schedules/p").json()
        return
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"], answer.text
    assert api.get("/api/v1/schedules/p").json() == before

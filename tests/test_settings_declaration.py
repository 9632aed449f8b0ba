"""The settings declaration (queue_system/config/declare.py) as a whole: each variable declared once,
on the settings page and in the Settings tree; its parser takes every valid value to the value it
means (and the loader puts it where the field says) and turns anything else into a ConfigError
naming the variable, never another exception."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docs.hooks import pages
from queue_system.config import declare
from queue_system.config.declare import SETTING
from queue_system.config.settings import SPEC, Settings, Var, load_settings
from queue_system.errors import ConfigError
from queue_system.storage.rate_limit import Rate
from queue_system.transports.signing import new_secret

BY_NAME = {var.name: var for var in SPEC}
PATHS = declare.attribute_paths(Settings)
# Variables that go with another one (load_settings checks the pair).
COMPANIONS = {
    "REDIS_SENTINELS": {"REDIS_SENTINEL_MASTER": "mymaster"},
    "REDIS_SENTINEL_MASTER": {"REDIS_SENTINELS": "h:1"},
}
CHECKS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_each_variable_is_declared_once() -> None:
    names = [var.name for var in SPEC]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)


def test_every_setting_is_on_the_settings_page_in_order() -> None:
    page = pages.fill(
        (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text(), "settings.md"
    )
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", page, re.M)
    assert rows == [var.name for var in SPEC]


def resolve(tree: Settings, path: str) -> Any:
    value: Any = tree
    for attribute in path.split("."):
        value = getattr(value, attribute)
    return value


def test_every_setting_lands_in_settings() -> None:
    """Each variable is a field of the tree (its default there), or a part of one (REDIS_ADDR...)."""
    assert set(PATHS) == set(BY_NAME)
    defaults = Settings()
    for name, path in PATHS.items():
        if "unset)" in path:  # a part: builds the field it names
            assert resolve(defaults, path.split()[0]) is None
        else:
            assert resolve(defaults, path) == BY_NAME[name].value(None), name


def test_secrets_stay_out_of_the_repr() -> None:
    def walk(cls: type) -> list[tuple[str, bool, bool]]:
        found = []
        for f in fields(cls):
            if SETTING in f.metadata:
                found.append((f.metadata[SETTING].name, f.metadata[SETTING].secret, f.repr))
            elif declare.GROUP in f.metadata:
                found += walk(f.metadata[declare.GROUP])
        return found

    seen = walk(Settings)
    assert all(shown is not secret for _, secret, shown in seen)
    assert {"API_KEYS", "REDIS_URL", "SMTP_URL", "WEBHOOK_SIGNING_SECRET"} <= {n for n, s, _ in seen if s}


# ---------------------------------------------------------------- valid text -> the value it means

_HOST = st.sampled_from(["localhost", "redis.example", "10.0.0.5", "cache-1.internal"])
_PORT = st.integers(1, 65535)
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)


def _joined(items: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, list[str]]]:
    """(text with spaces around commas, the items)."""
    return st.lists(items, min_size=1, max_size=4).map(lambda xs: (" , ".join(xs) + " ", xs))


def _networks() -> st.SearchStrategy[list[str]]:
    net = st.builds(lambda ip, bits: f"{ip}/{bits}", st.ip_addresses(v=4), st.integers(8, 32))
    return st.lists(net, min_size=1, max_size=4)


def _rate() -> st.SearchStrategy[tuple[str, Any]]:
    units = {"s": 1000, "min": 60_000, "h": 3_600_000}
    return st.builds(
        lambda n, every, unit: (f"{n}/{every or ''}{unit}", Rate(n, (every or 1) * units[unit], n)),
        st.integers(1, 10**6),
        st.integers(0, 60),
        st.sampled_from(sorted(units)),
    )


def _redis_url() -> st.SearchStrategy[str]:
    auth = st.one_of(st.just(""), _WORD.map(lambda p: f":{p}@"))
    tcp = st.builds(
        lambda s, a, h, p, db: f"{s}://{a}{h}:{p}/{db}",
        st.sampled_from(["redis", "rediss"]),
        auth,
        _HOST,
        _PORT,
        st.integers(0, 1023),
    )
    return st.one_of(tcp, _WORD.map(lambda w: f"unix:///tmp/{w}.sock"))


def _ports() -> st.SearchStrategy[str]:
    one = st.one_of(_PORT.map(str), st.tuples(_PORT, _PORT).map(lambda p: f"{min(p)}-{max(p)}"))
    return st.lists(one, min_size=1, max_size=4).map(",".join)


# Variable -> valid text and the value it means, for the parsers whose input has its own grammar.
OTHERS: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "REDIS_URL": _redis_url().map(lambda u: (u, u)),
    "REDIS_SENTINELS": st.lists(st.tuples(_HOST, _PORT), min_size=1, max_size=3).map(
        lambda hs: (",".join(f"{h}:{p}" for h, p in hs), tuple(hs))
    ),
    "DATA_DIR": st.lists(_WORD, min_size=1, max_size=3).map(lambda ws: ("/".join(ws), Path(*ws))),
    "API_KEYS": _joined(_WORD).map(lambda t: (t[0], ",".join(t[1]))),
    "API_READ_KEYS": _joined(_WORD).map(lambda t: (t[0], ",".join(t[1]))),
    "API_KEYS_FILE": st.just((__file__, Path(__file__))),
    "API_RATE_LIMIT": _rate(),
    "API_AUTH_FAILURES": _rate(),
    "API_TRUSTED_PROXIES": _networks().map(
        lambda ns: (", ".join(ns), tuple(ipaddress.ip_network(n, strict=False) for n in ns))
    ),
    "TASK_MODULES": _joined(
        st.lists(_WORD.filter(str.isidentifier), min_size=1, max_size=3).map(".".join)
    ).map(lambda t: (t[0], tuple(t[1]))),
    "SMTP_URL": st.builds(
        lambda s, h, p: (f"{s}://{h}:{p}", f"{s}://{h}:{p}"), st.sampled_from(["smtp", "smtps"]), _HOST, _PORT
    ),
    "EMAIL_FROM": st.builds(lambda a, h: (f" {a}@{h} ", f"{a}@{h}"), _WORD, _HOST),
    "EMAIL_DEFAULT_TO": _joined(st.builds(lambda a, h: f"{a}@{h}", _WORD, _HOST)).map(
        lambda t: (t[0], tuple(t[1]))
    ),
    "EGRESS_ALLOW_CIDRS": _networks().map(lambda ns: (f" {','.join(ns)} ", ",".join(ns))),
    "EGRESS_DENY_CIDRS": _networks().map(lambda ns: (",".join(ns), ",".join(ns))),
    "EGRESS_ALLOW_PORTS": _ports().map(lambda p: (f"{p} ", p)),
    "WEBHOOK_SIGNING_SECRET": st.integers(1, 3)
    .map(lambda n: [new_secret() for _ in range(n)])
    .map(lambda ss: ("  ".join(ss), " ".join(ss))),
}
_SIZES = {"": 1, "b": 1, "KB": 1000, "KiB": 1024, "mb": 1_000_000, "MiB": 1_048_576}


def valid(var: Var) -> st.SearchStrategy[tuple[str, Any]]:
    """Valid text for `var` and the value it means, generated from the parser's bounds."""
    parser = var.parser
    if parser.kind == "integer":
        low, high = parser.bounds or (0, None)
        return st.integers(low, high).map(lambda n: (f" {n} ", n))
    if parser.kind == "duration":
        low, high = parser.bounds or (1, None)
        ms = st.integers(low, high if high is not None else 10**12)
        return ms.map(lambda n: (f"{n}ms", n // parser.unit_ms))
    if parser.kind == "size":
        return st.builds(
            lambda n, u: (f"{n}{u}", n * _SIZES[u]), st.integers(0, 10**6), st.sampled_from(sorted(_SIZES))
        )
    if parser.kind == "choice":
        return st.sampled_from(parser.options).map(lambda o: (o, o))
    if parser.kind == "flag":
        words = [(w, True) for w in ("1", "true", "Yes", "ON")] + [
            (w, False) for w in ("0", "False", "no", "off")
        ]
        return st.sampled_from(words)
    if parser.kind == "text":
        return st.text(min_size=1).filter(str.strip).map(lambda t: (t, t))
    return OTHERS[var.name]


def test_every_setting_with_its_own_grammar_has_values_here() -> None:
    assert sorted(var.name for var in SPEC if var.parser.kind == "other") == sorted(OTHERS)


@pytest.mark.parametrize("var", SPEC, ids=lambda v: v.name)
@CHECKS
@given(data=st.data())
def test_a_valid_value_is_the_value_it_means(var: Var, data: st.DataObject) -> None:
    raw, expected = data.draw(valid(var))
    assert var.value(raw) == expected
    path = PATHS[var.name]
    if "unset)" not in path:
        env = {var.name: raw, **COMPANIONS.get(var.name, {})}
        assert resolve(load_settings(env), path) == expected


BOUNDED = [var for var in SPEC if var.parser.kind in ("integer", "duration")]


def outside(var: Var) -> st.SearchStrategy[str]:
    """Text just as well formed as a valid value, but out of the parser's bounds."""
    assert var.parser.bounds is not None
    low, high = var.parser.bounds
    if var.parser.kind == "integer":
        below = st.integers(max_value=low - 1).map(str)
    else:  # durations are never negative: below is what is shorter than the minimum
        below = st.integers(0, low - 1).map(lambda n: f"{n}ms") if low > 0 else st.nothing()
    above = st.nothing() if high is None else st.integers(min_value=high + 1)
    return st.one_of(below, above.map(lambda n: f"{n}ms" if var.parser.kind == "duration" else str(n)))


def assert_names(error: ConfigError, var: Var) -> None:
    assert error.variable == var.name
    assert str(error).startswith(f"{var.name}: ")
    assert not str(error).startswith(f"{var.name}: {var.name}"), "the name once"


@pytest.mark.parametrize("var", BOUNDED, ids=lambda v: v.name)
@CHECKS
@given(data=st.data())
def test_a_value_out_of_bounds_is_a_configuration_error(var: Var, data: st.DataObject) -> None:
    with pytest.raises(ConfigError) as caught:
        var.value(data.draw(outside(var)))
    assert_names(caught.value, var)


@pytest.mark.parametrize("var", SPEC, ids=lambda v: v.name)
@CHECKS
@given(raw=st.one_of(st.text(), st.text(alphabet="0123456789:/.,-@ abcdefhims[]%?=")))
def test_any_text_is_a_value_or_a_configuration_error_naming_the_variable(var: Var, raw: str) -> None:
    try:
        var.value(raw)
    except ConfigError as error:  # anything else (TypeError, OverflowError, ...) fails the test
        assert_names(error, var)

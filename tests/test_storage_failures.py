"""storage/failures.py's classification and its rendering in api/problems.py, over every redis-py
error class and any reply text; and request ids over any `X-Request-ID` a client may send."""

from __future__ import annotations

import inspect
import re
from typing import Any

import redis
import redis.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import get
from litestar.testing import RequestFactory, create_test_client

from queue_system.api import problems, request_ids
from queue_system.errors import (
    RedisOutOfMemory,
    RedisReadOnly,
    RedisRefusesWrites,
    RedisUnreachable,
    StorageFault,
    StorageUnavailable,
)
from queue_system.storage.failures import classify


def _takes_any_text(cls: type[redis.RedisError]) -> bool:
    try:  # Redis Cluster's ASK/MOVED parse "slot host:port" (the cluster client is not used here)
        cls("x")
    except ValueError:
        return False
    return True


ERROR_CLASSES = sorted(
    (
        c
        for _, c in inspect.getmembers(redis.exceptions, inspect.isclass)
        if issubclass(c, redis.RedisError) and _takes_any_text(c)
    ),
    key=lambda c: c.__name__,
)
TRANSPORT = (redis.ConnectionError, redis.TimeoutError)
REFUSAL: dict[str, type[StorageUnavailable]] = {
    "OOM": RedisOutOfMemory,
    "READONLY": RedisReadOnly,
    "MISCONF": RedisRefusesWrites,
    "NOREPLICAS": RedisRefusesWrites,
    "LOADING": RedisUnreachable,
    "BUSY": RedisUnreachable,
}
CODES = re.compile(
    r"(?:^|: -|\(['\"])(OOM|READONLY|MISCONF|NOREPLICAS|LOADING|BUSY|MASTERDOWN|TRYAGAIN)(?: |\Z)"
)
# Lua errors, WRONGTYPE, ERR ...: anything Redis may answer, including text that quotes a code.
REPLY = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80) | st.builds(
    "{} {}".format,
    st.sampled_from(["WRONGTYPE", "ERR", "NOPERM", "EXECABORT", *REFUSAL]),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ERROR_CLASSES), REPLY)
def test_every_redis_error_is_classified_and_only_transport_errors_read_as_unreachable(
    cls: type[redis.RedisError], text: str
) -> None:
    exc = cls(text)
    got = classify(exc)
    if issubclass(cls, TRANSPORT):
        assert type(got) is RedisUnreachable
    elif issubclass(cls, redis.exceptions.OutOfMemoryError):
        assert type(got) is RedisOutOfMemory
    elif issubclass(cls, redis.exceptions.ReadOnlyError):
        assert type(got) is RedisReadOnly
    elif not issubclass(cls, redis.ResponseError) or not CODES.search(str(exc)):
        assert type(got) is StorageFault  # a script error, WRONGTYPE, ERR ...: never "unreachable"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(REFUSAL)),
    st.integers(1, 999),
    st.text(st.characters(codec="ascii", categories=["L", "N", "Zs"]), max_size=40),
)
def test_a_refusal_inside_a_script_or_a_pipeline_is_that_refusal(code: str, line: int, rest: str) -> None:
    """Redis 6 quotes the failing command's reply in the script's error; redis-py's pipelines
    quote it in theirs. A full Redis under a script is still a full Redis."""
    where = f"@user_script:{line}: @user_script: {line}"
    script = f"Error running script (call to f_{'a' * 40}): {where}: -{code} {rest}"
    pipeline = f"Command # {line} (SET k v) of pipeline caused error: ('{code} {rest}',)"
    for text in (script, pipeline, f"{code} {rest}"):
        assert type(classify(redis.ResponseError(text))) is REFUSAL[code], text


REQUEST = RequestFactory().get("/api/v1/tasks")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ERROR_CLASSES), REPLY.map(lambda text: f"{text} leak-marker-9f2c"))
def test_the_response_is_500_or_503_and_never_shows_redis_words(
    cls: type[redis.RedisError], text: str
) -> None:
    exc = cls(text)
    response = problems.storage_error_handler(classify)(REQUEST, exc)
    body: dict[str, Any] = response.content
    classified = classify(exc)
    if isinstance(classified, StorageUnavailable):
        assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
        assert body["title"] == classified.summary
    else:
        assert response.status_code == 500 and body["type"].endswith(":storage-error")
    assert (body["title"] == "Redis is unreachable") == isinstance(classified, RedisUnreachable)
    assert "leak-marker-9f2c" not in repr(body)  # Redis's reply goes to the log, not to the client
    assert body["request_id"]


@get("/echo")
async def echo() -> dict[str, str]:
    return {"ok": "yes"}


USABLE = re.compile(r"[\x21-\x7e]{1,128}")


def test_any_request_id_header_comes_back_usable() -> None:
    """Whatever bytes a client sends as X-Request-ID, the id that comes back (and goes into log
    lines) is 1-128 visible ASCII characters: the client's own when usable, else a fresh one."""
    with create_test_client([echo], before_send=[request_ids.add_header]) as client:

        @settings(max_examples=300, deadline=None)
        @given(st.binary(max_size=200).filter(lambda b: not any(c in b for c in b"\r\n\x00")))
        def check(sent: bytes) -> None:
            got = client.get("/echo", headers=[(b"X-Request-ID", sent)]).headers.get_list("x-request-id")
            assert len(got) == 1 and USABLE.fullmatch(got[0]), got
            if USABLE.fullmatch(sent.decode("latin-1")):
                assert got[0] == sent.decode("ascii")
            else:
                assert re.fullmatch(r"[0-9a-f]{32}", got[0])

        check()

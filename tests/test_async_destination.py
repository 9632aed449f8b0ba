"""The delivery loop's host key (`async_http.destination`) is cached on the URL's `scheme://netloc`
prefix: it must name the host exactly as a full parse of the whole URL does, for any string."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from queue_system.domain.destinations import Destination
from queue_system.transports.async_http import destination

_PIECES = st.sampled_from(
    [
        "http",
        "https",
        "HTTP",
        "://",
        ":",
        "/",
        "?",
        "#",
        "@",
        "[",
        "]",
        "::1",
        "Example.COM",
        "127.0.0.1",
        "8080",
        "99999",
        " ",
        "\t",
        "\n",
        "\x00",
        "é",
        "a",
        "x",
        "%20",
        "\\",
    ]
)


def _full(url: str) -> Destination | str:
    try:
        return Destination.of_url(url).host_only()
    except ValueError as exc:
        return f"ValueError: {exc}"


def _cached(url: str) -> Destination | str:
    try:
        return destination(url)
    except ValueError as exc:
        return f"ValueError: {exc}"


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join) | st.text(max_size=40))
@example("https://Example.com:8443/a/b?q#f")
@example("http://[::1]:8080?x")
@example("http://h#frag/path")
@example(" http://evil.example/x")
@example("http://ho\tst/x")
@example("http://h:99999/x")
@example("http:x://h/p")
def test_cached_destination_matches_the_full_parse(url: str) -> None:
    assert _cached(url) == _full(url)
    assert _cached(url) == _full(url)  # again, from the cache


def test_one_entry_per_host_whatever_the_path() -> None:
    assert destination("https://a.example/hooks/1?t=1") is destination("https://a.example/hooks/2")
    assert destination("https://A.example:443/x") == Destination("https", "a.example", 443)

"""raw_json_depth_problem's fast paths (quote splitting, peeling innermost pairs) decide as the
plain count does: a model test against a one-character-at-a-time scanner."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_system.domain.redaction import raw_json_depth_problem


def _model_too_deep(raw: bytes, max_depth: int) -> bool:
    """Brackets outside strings counted one byte at a time (the rule, written plainly)."""
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


_json = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab[]{}"\\', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("k[{", max_size=2), inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, max_depth=st.integers(1, 6))
def test_valid_json_decides_as_the_model(value: object, max_depth: int) -> None:
    raw = json.dumps(value).encode()
    too_deep = raw_json_depth_problem(raw, max_depth=max_depth) is not None
    assert too_deep == _model_too_deep(raw, max_depth)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=60).map(lambda b: b.translate(bytes(b'[]{}"a'[x % 6] for x in range(256)))))
def test_unbalanced_brackets_decide_as_the_model(raw: bytes) -> None:
    # Unbalanced or crossed brackets take the exact count, never a shortcut. (Strings closed: an
    # unterminated one is malformed JSON, which the decoder reports.)
    if raw.count(b'"') % 2:
        raw += b'"'
    for max_depth in (1, 2, 3):
        too_deep = raw_json_depth_problem(raw, max_depth=max_depth) is not None
    assert too_deep == _model_too_deep(raw, max_depth)

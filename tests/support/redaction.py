"""Hypothesis strategies of secret-looking names and values."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from queue_system.domain.redaction import SECRET_WORDS

TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+.^_`|~-"  # RFC 9110 field-name
SECRET_CHARS = string.ascii_letters + string.digits + "._~+/=-"  # token68: what credentials use
PARAM_CHARS = string.ascii_letters + string.digits + "_-."


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from((c.lower(), c.upper())) for c in word)).map("".join)


# A distinctive value: whatever the redaction leaves, this must not survive.
secrets_ = st.text(SECRET_CHARS, min_size=8, max_size=40).map(lambda s: "Zq9" + s)


secret_names = st.builds(
    lambda pre, word, post: pre + word + post,
    st.text(TOKEN_CHARS, max_size=12),
    st.sampled_from(SECRET_WORDS).flatmap(any_case),
    st.text(TOKEN_CHARS, max_size=12),
)


credential_values = st.one_of(
    st.builds(
        lambda scheme, space, secret: scheme + space + secret,
        st.sampled_from(("bearer", "basic", "token", "digest")).flatmap(any_case),
        st.text(" \t", min_size=1, max_size=3),
        secrets_,
    ),
    st.builds(lambda a, b: f"eyJ{a}.{b}", st.text(string.ascii_letters + "_-", max_size=30), secrets_),
    secrets_.map(lambda s: "whsec_" + s),
)


PARAM_WORDS = (*SECRET_WORDS, "sig", "pass", "pwd")


secret_params = st.builds(
    lambda pre, word, post: pre + word + post,
    st.text(PARAM_CHARS, max_size=8),
    st.sampled_from(PARAM_WORDS).flatmap(any_case),
    st.text(PARAM_CHARS, max_size=8),
)

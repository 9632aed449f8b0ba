"""The webhook's guard and signing keys, built from the settings: what the worker's HTTP clients
and the webhook kind call (one place turns EGRESS_* and WEBHOOK_SIGNING_SECRET into objects).

    egress_policy(settings)           -> EgressPolicy (submit-time literal check, connect-time guard)
    egress_connector(settings, **kw)  -> aiohttp GuardedConnector (create it on the event loop)
    egress_transport(settings, **kw)  -> httpx GuardedHTTPTransport (the sync httpx.Client)
    signing_keys(settings)            -> the server's HMAC keys (WEBHOOK_SIGNING_SECRET), maybe ()

A blocked connection raises `EgressBlocked` (permanent: the senders fail the attempt with its
message, `egress blocked: <host> resolved to <address> (<range>)`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from queue_system.config.settings import SecuritySettings, Settings
from queue_system.transports.egress import EgressBlocked, EgressPolicy, SyncResolver, system_resolve
from queue_system.transports.egress_httpx import GuardedHTTPTransport
from queue_system.transports.signing import parse_secrets

if TYPE_CHECKING:  # aiohttp is the worker's: the API, which checks webhooks here, never loads it
    from queue_system.transports.egress_aiohttp import GuardedConnector

__all__ = ["EgressBlocked", "egress_connector", "egress_policy", "egress_transport", "signing_keys"]


@functools.lru_cache(maxsize=8)
def _policy(allow: str, deny: str, ports: str) -> EgressPolicy:
    return EgressPolicy.from_strings(allow, deny, ports)


def egress_policy(settings: Settings | SecuritySettings) -> EgressPolicy:
    s = settings.security if isinstance(settings, Settings) else settings
    return _policy(s.egress_allow_cidrs, s.egress_deny_cidrs, s.egress_allow_ports)


def egress_connector(settings: Settings, **kwargs: Any) -> GuardedConnector:
    """An aiohttp connector that connects only where the policy allows; `kwargs` go to
    `aiohttp.TCPConnector` (limit, limit_per_host, keepalive_timeout...), `resolver=` replaces the
    system resolver (tests)."""
    from queue_system.transports.egress_aiohttp import GuardedConnector, loop_resolve  # the worker's

    resolver = kwargs.pop("resolver", loop_resolve)
    return GuardedConnector(egress_policy(settings), resolver, **kwargs)


def egress_transport(
    settings: Settings, resolver: SyncResolver = system_resolve, **kwargs: Any
) -> GuardedHTTPTransport:
    """The transport of the worker's sync `httpx.Client`: every connection (each redirect hop
    included) passes the policy. `kwargs` go to GuardedHTTPTransport (limits, verify)."""
    return GuardedHTTPTransport(egress_policy(settings), resolver, **kwargs)


@functools.lru_cache(maxsize=8)
def _keys(text: str) -> tuple[bytes, ...]:
    return parse_secrets(text)


def signing_keys(settings: Settings | SecuritySettings) -> tuple[bytes, ...]:
    s = settings.security if isinstance(settings, Settings) else settings
    return _keys(s.signing_secret)

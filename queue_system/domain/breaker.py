"""What one attempt says about where it went: the rule that feeds both breakers of a destination
(domain/destinations.py; storage/lua/destinations.lua `settle` applies the signal)."""

from __future__ import annotations

from queue_system.domain.destinations import Signal
from queue_system.domain.models import AttemptResult, Outcome


def breaker_signal(result: AttemptResult) -> Signal:
    """UP (an answer below 500), ENDPOINT_DOWN (a 5xx, a response timeout, a connection lost after
    it was made: the host answered), HOST_DOWN (the transport could not reach the host:
    `connect_failed`) or NONE (the request never went out, or was refused on our side:
    `about_destination` is False)."""
    if not result.about_destination:
        return Signal.NONE
    if result.status_code is not None:
        return Signal.ENDPOINT_DOWN if result.status_code >= 500 else Signal.UP
    if result.outcome is Outcome.SUCCESS:
        return Signal.UP
    if result.outcome is not Outcome.TRANSIENT:
        return Signal.NONE
    return Signal.HOST_DOWN if result.connect_failed else Signal.ENDPOINT_DOWN

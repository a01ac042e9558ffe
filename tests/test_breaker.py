"""The circuit breaker: closed while calls succeed; after a failure, calls are skipped for
``retry_seconds``, then one caller tries; its success ends the outage."""

from __future__ import annotations

from tastebud.breaker import Breaker, breakers


def test_a_failure_skips_calls_until_one_retry_is_due() -> None:
    now = [100.0]
    breaker = Breaker("test-dependency", retry_seconds=1.0, clock=lambda: now[0])
    assert breaker.available() and not breaker.down
    breaker.failed(ConnectionError("refused"))
    assert breaker.down and breaker.reason == "ConnectionError: refused"
    assert not breaker.available()
    now[0] += 1.0
    assert breaker.available()  # one caller tries again …
    assert not breaker.available()  # … and the others still skip meanwhile
    breaker.failed(ConnectionError("still refused"))
    now[0] += 0.5
    assert not breaker.available()
    now[0] += 0.5
    assert breaker.available()
    assert breaker.succeeded()  # it was down: the caller learns the outage ended
    assert not breaker.down and breaker.available() and breaker.reason == ""
    assert not breaker.succeeded()  # nothing ended this time
    assert breaker in breakers()

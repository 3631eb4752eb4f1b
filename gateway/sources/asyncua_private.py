"""The two places the OPC UA source leans on asyncua's internals; asyncua is pinned to the tested minor.

asyncua has no public way to do either, and each matters:

- `stop_stale_watchdog(client)`: since asyncua 2.0, `Client.connect()` starts a stale-subscription
  watchdog (`Client._stale_watchdog_task`) that recreates a silent subscription behind our back. Our
  own watchdog (gateway.sources.opcua) rebuilds the whole client and re-reads every node instead, so a
  gauge's missed parts are counted once and by one rule; two watchdogs would race.
- `queued_events(sub)`: a publish response of many notifications arrives at once. Only one at a time
  can be awaited publicly (`next_event`); taking those already queued (`Subscription._event_queue`)
  without awaiting lets one pipeline pass handle them together, with the part-counter after the values
  of the same response.

Both read the attribute directly, without a default: when an asyncua release renames one, the source
fails with an AttributeError naming it (state `down`, last_error) instead of silently running without
the behaviour. tests/test_library_internals.py checks both against the installed asyncua, and
pyproject.toml pins asyncua to TESTED_VERSION's minor: a new asyncua is a deliberate step (run that
test and the OPC UA tests, then move the pin and TESTED_VERSION together).
"""

from __future__ import annotations

from typing import Any

TESTED_VERSION = "2.1.0"  # the asyncua these internals were read from and tested with


def stop_stale_watchdog(client: Any) -> None:
    """Cancel asyncua's own stale-subscription watchdog of a connected client (ours rebuilds the client)."""
    task = client._stale_watchdog_task  # started by Client.connect(); None before it
    if task is not None:
        task.cancel()


def queued_events(sub: Any) -> list[Any]:
    """The notifications of an iterator-mode subscription already queued, without waiting; stops at the
    subscription's end marker (None), which stays consumed as `next_event` would consume it."""
    queue = sub._event_queue  # asyncio.Queue, created with the subscription in iterator mode
    events: list[Any] = []
    while queue is not None and not queue.empty():
        event = queue.get_nowait()
        if event is None:  # the subscription was closed
            break
        events.append(event)
    return events

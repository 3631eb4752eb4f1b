"""The one interface every output implements, and the wrapper the app runs each output in.

After Telegraf's: an output is a small thing (start, stop, publish, stats) and knows nothing of the
other outputs; `RunningOutput` around it does what every output needs the same way (a stop that may
not take longer than its share, a failing publish that must not keep the others from theirs, the log
lines). The app keeps a list of running outputs, feeds every commit to all of them, and builds the
/healthz report from their `stats()` under their `name`: a new output is one module behind `Output`
and one line where the app builds its outputs.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any, ClassVar

from gateway.config import Config
from gateway.core.model import Event

log = logging.getLogger("gateway.outputs")


class Output(abc.ABC):
    """Something that takes committed events out of the process: the line-side screens, the plant broker."""

    name: ClassVar[str]  # the key of its stats in /healthz (and of its section in /metrics)
    from_outbox: ClassVar[bool]  # True: it forwards the outbox rows, so `publish` only says there are new ones
    stop_timeout: ClassVar[float] = 1.0  # seconds its stop may take of the few a clean stop has

    @abc.abstractmethod
    async def start(self) -> None:
        """Start serving or forwarding; raises when its settings cannot work (the daemon does not start)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop; what is committed but not delivered is delivered after the next start (store, outbox)."""

    @abc.abstractmethod
    def publish(self, events: list[Event]) -> None:
        """Committed events, on the loop, in seq order. Must not block: queue or wake, never wait."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Its numbers for /healthz and /metrics (JSON-able)."""

    def reconfigure(self, config: Config) -> None:  # noqa: B027  (most outputs take settings at restart only)
        """SIGHUP: settings that may change live; the others take effect at the next restart."""


class RunningOutput:
    """An output as the app runs it: logged start and stop, a bounded stop, publish failures kept apart."""

    def __init__(self, output: Output):
        self.output = output
        self.name = output.name
        self.publish_errors = 0

    async def start(self) -> None:
        await self.output.start()
        log.debug("output %s started", self.name)

    async def stop(self) -> None:
        """Stop within the output's `stop_timeout`; a failure or a timeout is logged, never raised."""
        try:
            await asyncio.wait_for(self.output.stop(), self.output.stop_timeout)
        except TimeoutError:
            log.warning("output %s did not stop within %.1f s", self.name, self.output.stop_timeout)
        except Exception as exc:
            log.warning("output %s: stop failed: %s", self.name, exc)

    def publish(self, events: list[Event]) -> None:
        """Hand committed events on; an output that raises is logged and the next output still gets them."""
        try:
            self.output.publish(events)
        except Exception:
            self.publish_errors += 1
            log.exception("output %s: publishing %d events failed", self.name, len(events))

    def stats(self) -> dict[str, Any]:
        return self.output.stats()

    def reconfigure(self, config: Config) -> None:
        self.output.reconfigure(config)


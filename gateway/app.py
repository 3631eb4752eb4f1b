"""The daemon: builds every part from a Config, runs them as asyncio tasks, reloads and stops them.

`spc-gateway run --config FILE` ends in `run_daemon`. SIGTERM/SIGINT stop cleanly (exit 0 within 5 s),
SIGHUP re-reads the config and restarts only the sources whose settings changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from gateway import __version__
from gateway.alerts import AlertService
from gateway.config import Config, ConfigError
from gateway.config.topics import topic_for as northbound_topic
from gateway.core.listen_error import ListenError
from gateway.core.model import Event
from gateway.core.sdnotify import Notifier
from gateway.outputs.base import Output, RunningOutput
from gateway.outputs.mqtt import Northbound
from gateway.outputs.registry import OUTPUTS
from gateway.outputs.sparkplug import KINDS as SPARKPLUG_KINDS
from gateway.outputs.sparkplug import SparkplugOutput
from gateway.outputs.websocket.hub import Hub
from gateway.outputs.websocket.ws import LineServer
from gateway.pipeline import Pipeline
from gateway.sources.base import Binding, Source
from gateway.sources.parts import part_bindings
from gateway.sources.registry import SOURCES, load_config
from gateway.store import Store

log = logging.getLogger("gateway")

STOP_TIMEOUT = 4.0  # seconds for a clean stop; systemd's TimeoutStopSec is longer
STORAGE_CHECK_INTERVAL = 2.0
MEMORY_TRIM_INTERVAL = 10.0  # seconds between handing freed heap memory back to the OS (each trim < 1 ms)
# The built-in kinds of output: /healthz reports each under its name, null when not configured. Any other
# output is registered in gateway.outputs.registry.OUTPUTS (docs/extending.md).
OUTPUT_KINDS: tuple[type[Output], ...] = (LineServer, Northbound, SparkplugOutput)


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim, where there is one (Debian/Ubuntu: yes; musl: no)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


def process_memory() -> dict[str, int]:
    """Memory for /healthz and /metrics: resident size, and the bytes the program really holds. The
    pair tells a leak (both climb) from allocator fragmentation (RSS climbs alone). On pymalloc (the
    default) that is Python's live block count; under jemalloc (LD_PRELOAD) also its `stats.allocated`."""
    memory = {"python_allocated_blocks": sys.getallocatedblocks()}
    allocated = _jemalloc_allocated()
    if allocated is not None:
        memory["allocated_bytes"] = allocated
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            memory["rss_bytes"] = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass  # not Linux
    return memory


@functools.cache
def _mallctl() -> Any:
    """jemalloc's control function when jemalloc is this process's malloc (LD_PRELOAD), else None."""
    try:
        mallctl = ctypes.CDLL(None).mallctl
    except (OSError, AttributeError):
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return mallctl


def _jemalloc_allocated() -> int | None:
    mallctl = _mallctl()
    if mallctl is None:
        return None
    epoch = ctypes.c_uint64(1)  # jemalloc's statistics are a snapshot refreshed by writing the epoch
    mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
    value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
    if mallctl(b"stats.allocated", ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
        return None
    return value.value


def bindings_for(config: Config, source_name: str) -> list[Binding]:
    """The characteristics one source reads: the part numbers first (gateway.sources.parts), then the values."""
    return part_bindings(config, source_name) + [
        Binding(product, characteristic)
        for product in config.products for characteristic in product.characteristics
        if characteristic.source == source_name]


def written_through(config: Config, source_name: str) -> bool:
    """Does an `outputs:` entry write through this source (then it runs even if it reads nothing)?"""
    return any(output.write.source == source_name for output in config.outputs)


class Gateway:
    """All parts of one running gateway."""

    def __init__(self, config: Config, *, notifier: Notifier | None = None):
        self.config = config
        self.notifier = notifier or Notifier()
        self.started_at = time.time()
        storage = config.storage
        self.store = Store(storage.path, batch_max=storage.batch_max, flush_interval=storage.flush_interval,
                           retention=storage.retention, max_size=storage.max_size)
        self.alerts = AlertService(self.store, config)
        self.outputs: list[RunningOutput] = []  # in start order; each stops within its own timeout
        self.sources: dict[str, Source] = {}
        self.pipeline: Pipeline | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._storage_alerted = False

    # ------------------------------------------------------------------ start / stop

    async def start(self) -> None:
        """Open the store, start serving, start the sources; then tell systemd we are ready."""
        await self.store.open()
        self.store.sync_catalog(self.config.products)
        topic_for = None
        northbound = sparkplug = None
        if self.config.northbound is not None:
            mqtt = self.config.northbound.mqtt
            # None for the types northbound.mqtt.publish leaves out: those never enter the outbox, unless
            # Sparkplug takes them (the JSON consumer reads only the kinds of its own publish list)
            rows_for = mqtt
            if self.config.northbound.sparkplug is not None:
                rows_for = dataclasses.replace(mqtt, publish=tuple(dict.fromkeys(mqtt.publish + SPARKPLUG_KINDS)))
                sparkplug = SparkplugOutput(self.config.northbound, self.store, list(self.config.products))
            topic_for = functools.partial(northbound_topic, rows_for)
            northbound = Northbound(
                mqtt, self.store, gateway_name=self.config.gateway.name, version=__version__,
                product_codes=[p.code for p in self.config.products], on_alert=self._northbound_alert)
        self.pipeline = Pipeline(self.config, self.store, self.alerts, publish=self._publish, topic_for=topic_for)
        await self.alerts.start(publish=self._publish, topic_for=topic_for)
        await self.pipeline.start()
        server = LineServer(self.config, self.store, self.alerts, Hub(self.config), health=self.health,
                            metrics=self.metrics, recalculate=self.pipeline.recalculate_limits,
                            test_output=self._test_output)
        # every output is built before any starts: each outbox consumer registers before rows are deleted
        for output in (server, northbound, sparkplug, *(kind.build(self) for kind in OUTPUTS)):
            if output is not None:
                running = RunningOutput(output)
                await running.start()  # the line-side service raises ListenError for a taken port
                self.outputs.append(running)
        for source_config in self.config.sources:
            await self._start_source(source_config)
        self._tasks = [asyncio.create_task(self.notifier.watchdog(), name="watchdog"),
                       asyncio.create_task(self._watch_storage(), name="storage-watch"),
                       asyncio.create_task(self._release_memory(), name="memory-trim")]
        self.notifier.ready(f"{len(self.sources)} sources, listening on "
                            f"{self.config.server.listen.host}:{self.config.server.listen.port}")
        log.info("spc-gateway %s started: %s, %d sources, %d products, store %s", __version__,
                 self.config.gateway.name, len(self.sources), len(self.config.products), self.config.storage.path)

    async def _start_source(self, source_config: Any) -> None:
        bindings = bindings_for(self.config, source_config.name)
        if not bindings and not written_through(self.config, source_config.name):
            log.info("source %s: no characteristic reads it; not started", source_config.name)
            return
        assert self.pipeline is not None
        source = SOURCES[source_config.type].build(source_config, bindings, self.pipeline.sink)
        self.sources[source_config.name] = source
        await source.start()

    async def stop(self) -> None:
        """Stop sources, flush the store, close clients with 1001."""
        self.notifier.stopping()
        # all at once: one slow peer must not spend the others' share of the 5 s a stop may take
        await asyncio.gather(*(asyncio.wait_for(source.stop(), 1.0) for source in self.sources.values()),
                             return_exceptions=True)
        self.sources.clear()
        if self.pipeline is not None:
            await self.pipeline.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.alerts.stop()
        for output in self.outputs:
            await output.stop()  # bounded by the output's own stop_timeout; never raises
        await self.store.close(timeout=2.0)
        log.info("spc-gateway stopped")

    # ------------------------------------------------------------------ reload

    async def reload(self, path: str) -> None:
        """SIGHUP: re-read the config; on error keep the old one; restart only what changed."""
        self.notifier.reloading()
        try:
            # reading and checking a file of up to 1 MB takes a second or two: on a thread, so the
            # loop keeps serving WebSocket clients and sources meanwhile
            new, _warnings = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            log.error("reload refused, still running on the previous config:\n%s", exc)
            self.notifier.ready("reload refused: invalid config")
            return
        except OSError as exc:
            log.error("reload refused, cannot read %s: %s", path, exc)
            self.notifier.ready("reload refused")
            return
        old = self.config
        changed_sources = {s.name for s in new.sources if s not in old.sources}
        changed_sources |= {s.name for s in old.sources if s not in new.sources}
        for source in new.sources:
            if bindings_for(new, source.name) != bindings_for(old, source.name):
                changed_sources.add(source.name)
            if written_through(new, source.name) != written_through(old, source.name):
                changed_sources.add(source.name)  # an output needs it started (or no longer does)
        if (old.server, old.storage, old.northbound, old.opcua_server) != (
                new.server, new.storage, new.northbound, new.opcua_server):
            log.warning("listen address, TLS, tokens, storage, northbound and opcua_server settings take effect "
                        "at the next restart; origins and connection limits apply now")
        for name in sorted(changed_sources):
            running = self.sources.pop(name, None)
            if running is not None:
                await running.stop()
        self.config = new
        self.alerts.config = new
        self.store.sync_catalog(new.products)
        assert self.pipeline is not None
        self.pipeline.reconfigure(new, await self.store.engine_states())
        for output in self.outputs:
            output.reconfigure(new)
        for source in new.sources:
            if source.name in changed_sources:
                await self._start_source(source)
        log.info("reloaded %s: restarted sources %s", path, sorted(changed_sources) or "none")
        self.notifier.ready("reloaded")

    # ------------------------------------------------------------------ fan-out, health

    def _publish(self, events: list[Event]) -> None:
        """After each commit, in seq order: every output gets the events (or the word that they are stored)."""
        for output in self.outputs:
            output.publish(events)

    async def _test_output(self, name: str, on: bool, hold: float, user: str) -> dict[str, Any]:
        """`outputs test`: the output kind that has a `test` (gateway.outputs.andon) writes by hand."""
        for running in self.outputs:
            test = getattr(running.output, "test", None)
            if test is not None:
                result: dict[str, Any] = await test(name, on, hold, user)
                return result
        raise LookupError("this gateway has no outputs")

    def _northbound_alert(self, kind: str, **values: Any) -> None:
        with self.store.batch(on_commit=self._publish) as batch:
            self.alerts.storage_problem(batch, kind, **values)

    async def _watch_storage(self) -> None:
        while True:
            await asyncio.sleep(STORAGE_CHECK_INTERVAL)
            try:
                await self.store.check()
            except OSError as exc:  # the stat itself failed (a dead disk): the commits will say more
                log.warning("checking the database file: %s", exc)
            stats = self.store.stats()
            if stats.get("failing") and not self._storage_alerted:
                self._storage_alerted = True
                log.error("storage is failing, retrying: %s", stats.get("last_error"))
                self._storage_alert(stats)
            elif not stats.get("failing"):
                self._storage_alerted = False

    def _storage_alert(self, stats: dict[str, Any]) -> None:
        """Raise STORAGE and show it on every screen now. Its batch cannot be committed while the disk is
        full (or ever, once the file is lost), so the screens get it before it is stored, as a status
        message without `seq` (hub.announce): it is the one message they must not wait for. Once stored
        it goes out like every event, numbered and in order, to the screens and the plant."""
        kind = "store_lost" if stats.get("file_lost") else "store_failing"
        with self.store.batch(on_commit=self._publish) as batch:
            self.alerts.storage_problem(batch, kind, error=stats.get("last_error"))
        if batch.events:  # the screens see it now; every output gets it again, with its seq, once stored
            for output in self.outputs:
                output.announce(batch.events)

    async def _release_memory(self) -> None:
        # Thousands of short-lived event bodies, frames and SQLite buffers a second, freed on three threads,
        # leave holes in glibc's heaps that it does not return to the OS by itself: RSS then creeps up
        # (+150 % in a 30-minute soak at 2,000 readings/s) although live memory stays flat. Trimming every
        # 10 s hands the free pages back (the heap then stays flat); each call takes well under a
        # millisecond and runs in a worker thread, outside the GIL (ctypes).
        trim = _malloc_trim()
        if trim is None or _mallctl() is not None:
            return  # not glibc, or jemalloc is the allocator: it hands free pages back by itself
        while True:
            await asyncio.sleep(MEMORY_TRIM_INTERVAL)
            await asyncio.to_thread(trim)

    def health(self) -> dict[str, Any]:
        """What /healthz serves: sources, characteristics, store, every output's stats; `ok` decides 200/503."""
        sources = {name: s.health.as_dict() for name, s in self.sources.items()}
        characteristics = self.pipeline.health() if self.pipeline else {}
        store = self.store.stats()
        ok = (not store.get("failing")
              and all(s["state"] == "connected" for s in sources.values())
              and not any(c["stale"] for c in characteristics.values()))
        report: dict[str, Any] = {
            "ok": ok, "gateway": self.config.gateway.name, "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "sources": sources, "characteristics": characteristics, "store": store,
            "pipeline": self.pipeline_stats(), "process": process_memory(),
        }
        report.update(dict.fromkeys(kind.name for kind in (*OUTPUT_KINDS, *(k.output for k in OUTPUTS))))
        report.update((output.name, output.stats()) for output in self.outputs)
        return report

    def pipeline_stats(self) -> dict[str, Any]:
        p = self.pipeline
        if p is None:
            return {}
        return {"ingested": p.ingested, "duplicates": p.duplicates, "rejected": p.rejected,
                "clock_jumps": p.clock_jumps,
                "queue_depth": p.queue.qsize(), "queue_limit": p.queue.maxsize}

    def metrics(self) -> dict[str, Any]:
        """Numbers for /metrics that only the app knows (the server adds its own)."""
        return self.health()


async def serve(config_path: str, *, notifier: Notifier | None = None,
                on_started: Callable[[Gateway], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT; reload on SIGHUP. Returns the process exit status."""
    config, _warnings = load_config(config_path)
    if os.environ.get("PYTHONMALLOC") == "malloc" and _mallctl() is None:
        log.warning("Python's objects go to malloc but jemalloc is not loaded: memory will fragment; "
                    "install it: apt-get install libjemalloc2 / jemalloc 없음: libjemalloc2 를 설치하세요")
    gateway = Gateway(config, notifier=notifier)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def request_reload() -> None:  # a SIGHUP while one reload waits is folded into it
        if not reloads.full():
            reloads.put_nowait(None)

    loop.add_signal_handler(signal.SIGHUP, request_reload)
    try:
        await gateway.start()
    except BaseException as exc:
        if isinstance(exc, ListenError):
            log.error("%s", exc)
        with contextlib.suppress(Exception):
            await gateway.stop()
        if isinstance(exc, ListenError):
            return 1  # systemd restarts us (Restart=on-failure): the port may be free by then
        raise
    if on_started is not None:
        on_started(gateway)

    async def reload_loop() -> None:
        while True:
            await reloads.get()
            try:
                await gateway.reload(config_path)
            except Exception:
                log.exception("reload failed; still running")

    reloader = asyncio.create_task(reload_loop())
    await stop.wait()
    log.info("stop requested")
    reloader.cancel()
    try:
        await asyncio.wait_for(gateway.stop(), STOP_TIMEOUT)
    except TimeoutError:
        log.error("clean stop took longer than %.0f s; exiting anyway", STOP_TIMEOUT)
    return 0

"""The page's andon lamps against the real daemon and the simulated PLC: one lamp per `outputs:` entry,
lit while the gateway holds it on, yellow and blinking while its writes fail, labelled in Korean and
English, inside a 1024x600 panel."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sim.simulator import ModbusSimulator
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config
from tests.hmi_fixtures import Screen
from tests.test_andon import RED, coil, plc_memory

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.timeout(90)

# every tile and lamp lies inside the window, and the summary row does not spill over
OUTSIDE = """() => [...document.querySelectorAll('.tile, .lamp')].filter((b) => b.offsetParent !== null)
  .filter((b) => { const r = b.getBoundingClientRect(); return r.left < -1 || r.right > innerWidth + 1; })
  .map((b) => (b.id || b.className) + ' ' + b.textContent.trim().slice(0, 30))"""
SPILL = """() => { const s = document.querySelector('.summary'); return s.scrollWidth > s.clientWidth + 1; }"""


@pytest.fixture
def plc_thread() -> Iterator[tuple[int, object]]:
    """The simulated PLC in its own event loop and thread (the browser test is synchronous)."""
    port = free_port()
    memory = plc_memory(11.0)  # out of spec: the andon goes on
    ready, loop_box = threading.Event(), {}

    def run() -> None:
        async def main() -> None:
            plc = ModbusSimulator(memory, port=port)
            await plc.start()
            stop = asyncio.Event()
            loop_box["stop"] = (asyncio.get_running_loop(), stop)
            ready.set()
            await stop.wait()
            await plc.stop()

        asyncio.run(main())

    thread = threading.Thread(target=run, name="plc", daemon=True)
    thread.start()
    assert ready.wait(10)
    yield port, memory
    loop, stop = loop_box["stop"]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_andon_lamps_on_the_page(browser, tmp_path: Path, plc_thread, language: str) -> None:
    modbus_port, memory = plc_thread
    port = free_port()
    raw = minimal_config(tmp_path, port=port, modbus_port=modbus_port)
    raw["gateway"]["language"] = language
    press = {"name": "press", "type": "modbus", "host": "127.0.0.1", "port": free_port(), "timeout": "300ms",
             "backoff": {"initial": "100ms", "maximum": "300ms"}}
    raw["sources"].append(press)
    raw["outputs"] = [RED, {"name": "press-interlock", "when": {"alert_types": ["OUT_OF_SPEC"]},
                            "write": {"source": "press", "coil": 1}}]
    daemon = Daemon(write_config(tmp_path, raw)).start(wait_for_port=port)
    try:
        screen = Screen(browser, f"http://127.0.0.1:{port}", size=(1024, 600))
        try:
            page = screen.page
            page.wait_for_selector(".lamp-on[data-output='andon-red']", timeout=20000)
            page.wait_for_selector(".lamp-failing[data-output='press-interlock']", timeout=20000)
            assert coil(memory, 20) == 1  # type: ignore[attr-defined]
            label = page.inner_text("#tile-outputs > span")
            assert label == {"ko": "안돈", "en": "Andon"}[language]
            title = page.get_attribute(".lamp[data-output='andon-red']", "title")
            assert title == {"ko": "andon-red: 켜짐", "en": "andon-red: on"}[language]
            assert page.evaluate(OUTSIDE) == [] and not page.evaluate(SPILL)
            box = page.locator("#tile-outputs").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 600
            screen.shot(f"andon-lamps-{language}-1024x600")
            assert screen.unexpected_errors() == []
        finally:
            screen.close()
    finally:
        daemon.stop()

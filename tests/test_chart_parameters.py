"""Chart parameters in the configuration (issue 15, item 1): `lambda`, `L` beside `chart: ewma`, `k`, `h`,
`fir` beside `chart: cusum`; they reach the engine, and a reload that changes them starts the chart afresh
as a change of the fixed limits does. The check-config messages are cases in tests/config_cases/
(chart_parameters_ok, chart_parameters_errors)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.app import Gateway
from gateway.config import ConfigError
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sources.registry import load_config
from gateway.spc.charts.base import ChartParameters
from gateway.spc.engine import EngineSettings
from tests.daemon_helpers import minimal_config, write_config


def ewma_config(tmp_path: Path, **parameters: object) -> dict:
    config = minimal_config(tmp_path)
    characteristic = config["products"][0]["characteristics"][0]
    characteristic.update(chart="ewma", **parameters)
    second = {**characteristic, "name": "length", "modbus": {**characteristic["modbus"], "address": 2}}
    second.update(chart="cusum", k=0.5, h=4, fir=True)
    for key in parameters:
        second.pop(key, None)
    config["products"][0]["characteristics"].append(second)
    return config


def test_the_keys_reach_the_engine_and_defaults_are_analyzes(tmp_path: Path) -> None:
    config, _ = load_config(str(write_config(tmp_path, ewma_config(tmp_path, **{"lambda": 0.1, "L": 2.7}))))
    ewma, cusum = config.products[0].characteristics
    assert EngineSettings.from_characteristic(ewma).parameters == ChartParameters(lam=0.1, L=2.7)
    assert EngineSettings.from_characteristic(cusum).parameters == ChartParameters(k=0.5, h=4.0, fir=True)
    config, _ = load_config(str(write_config(tmp_path, ewma_config(tmp_path))))
    # the defaults of `analyze --lambda/--L/--k/--h` (cli.md): 0.2, 3, 0.5, 5, no headstart
    assert config.products[0].characteristics[0].parameters == ChartParameters(0.2, 3.0, 0.5, 5.0, False)


def test_a_key_of_another_chart_or_out_of_range_refuses_the_file(tmp_path: Path) -> None:
    for parameters, words in (({"h": 4}, "h is a parameter of chart cusum; chart ewma takes lambda and L"),
                              ({"lambda": 0}, "lambda 0 is out of range: it must be in (0, 1]")):
        try:
            load_config(str(write_config(tmp_path, ewma_config(tmp_path, **parameters))))
        except ConfigError as exc:
            assert words in str(exc) and "gateway.yaml:" in str(exc)
        else:
            raise AssertionError(f"{parameters} was accepted")


def test_a_reload_that_changes_a_parameter_starts_that_chart_afresh(tmp_path: Path) -> None:
    path = write_config(tmp_path, ewma_config(tmp_path, **{"lambda": 0.2}))
    config, _ = load_config(str(path))
    bore, length = CharacteristicKey(1, "diameter"), CharacteristicKey(1, "length")
    now = time.time()

    async def feed(gateway: Gateway, values: list[float]) -> None:
        expected = gateway.pipeline.ingested + 2 * len(values)
        for value in values:
            await gateway.pipeline.sink(Measurement(bore, value, now))
            await gateway.pipeline.sink(Measurement(length, value, now))
        deadline = time.monotonic() + 10
        while gateway.pipeline.ingested < expected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the commit, and the engine states with it

    async def scenario() -> None:
        gateway = Gateway(config)
        await gateway.start()
        try:
            await feed(gateway, [10.1, 10.2, 10.15])
            engines = {k: s.engine for k, s in gateway.pipeline.characteristics.items()}
            assert engines[bore].tracker.to_state()[0] != 10.0  # the EWMA has moved off the center
            write_config(tmp_path, ewma_config(tmp_path, **{"lambda": 0.1}))
            await gateway.reload(str(path))
            after = {k: s.engine for k, s in gateway.pipeline.characteristics.items()}
            assert after[length] is engines[length]  # untouched
            fresh = after[bore]
            assert fresh is not engines[bore] and fresh.settings.parameters.lam == 0.1
            assert fresh.tracker.to_state() == [10.0, 1.0]  # z_0 = center, no point yet
            assert fresh.subgroup_number == 3  # the numbering goes on
            await feed(gateway, [10.1])
            assert fresh.tracker.to_state()[0] == 0.1 * 10.1 + 0.9 * 10.0
            # a reload with the same parameters keeps the statistic
            await gateway.reload(str(path))
            assert gateway.pipeline.characteristics[bore].engine is fresh
            # a wrong value is refused, and the chart goes on as it was
            write_config(tmp_path, ewma_config(tmp_path, **{"lambda": 2}))
            await gateway.reload(str(path))
            assert gateway.pipeline.characteristics[bore].engine is fresh
        finally:
            await gateway.stop()

    asyncio.run(scenario())


def test_the_example_configs_commented_ewma_and_cusum_load_when_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parent.parent / "config" / "gateway.example.yaml").read_text(encoding="utf-8")
    start = example.index("      # - name: journal_diameter")
    end = example.index("\n\n", start)  # the block ends at the first blank line
    block = "\n".join(line.replace("      # ", "      ", 1) for line in example[start:end].splitlines())
    path = tmp_path / "gateway.yaml"
    path.write_text(example[:start] + block + "\n" + example[end:], encoding="utf-8")
    config, _ = load_config(str(path))
    journal, shoulder = config.products[1].characteristics[-2:]
    assert (journal.chart, journal.parameters) == ("ewma", ChartParameters(lam=0.1, L=2.7))
    assert (shoulder.chart, shoulder.subgroup_size, shoulder.parameters) == ("cusum", 4, ChartParameters(h=4.0, fir=True))

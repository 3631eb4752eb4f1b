"""`spc-gateway check-config FILE`: every problem on its own line, then one summary line."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from gateway.config.kinds import SourceKind
from gateway.config.load import load_config
from gateway.config.model import ConfigError


def check_config(path: str, kinds: Iterable[SourceKind], out: TextIO = sys.stdout,
                 alert_types: Iterable[str] | None = None) -> int:
    """Validate a config file without starting anything; 0 when usable (warnings allowed), 1 when not.

    `kinds`: the source protocols a file may use (gateway.sources.registry.SOURCES.kinds());
    `alert_types`: the alert types `outputs:` may name (gateway.sources.registry.alert_type_names()).
    """
    try:
        config, warnings = load_config(path, kinds, alert_types)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        errors = sum(p.severity == "error" for p in exc.problems)
        warnings_count = len(exc.problems) - errors
        print(f"INVALID: {_count(errors, 'error')}, {_count(warnings_count, 'warning')}", file=out)
        return 1
    for problem in warnings:
        print(problem, file=out)
    characteristics = sum(len(p.characteristics) for p in config.products)
    tail = f" ({_count(len(warnings), 'warning')})" if warnings else ""
    print(f"OK: {_count(len(config.sources), 'source')}, {_count(len(config.products), 'product')}, "
          f"{_count(characteristics, 'characteristic')}{tail}", file=out)
    return 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

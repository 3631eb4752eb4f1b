"""Loading a config file: read it (bounded), compose the YAML node tree, build the sections, check the files.

The top of the config package: it imports the loader (nodes, converters) and the sections, and nothing
below imports it, so the package reads one way (model <- files <- loader <- values <- products <- sections
<- load).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from gateway.config.kinds import SourceKind
from gateway.config.loader import MAX_CONFIG_BYTES, Reader, _compose, check_files
from gateway.config.model import Config, ConfigError, Problem
from gateway.config.sections import build_config
from gateway.core.secrets import TooLarge, read_limited


def load_config(path: str, kinds: Iterable[SourceKind],
                alert_types: Iterable[str] | None = None) -> tuple[Config, list[Problem]]:
    """Parse and validate a file; returns the config and its warnings, or raises ConfigError.

    `kinds` are the source protocols a file may use; callers outside config use
    gateway.sources.registry.load_config(path), which passes every registered one, and every alert
    type `outputs:` may name (None: those names are not checked).
    """
    reader = Reader(path, os.path.dirname(os.path.abspath(path)))
    built: dict[str, Any] | None = None
    try:
        data = read_limited(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        reader.problem((1, 1), "(file)", f"cannot read the file: {exc.strerror or exc}")
    except TooLarge:
        reader.problem((1, 1), "(file)", f"the file is larger than {MAX_CONFIG_BYTES >> 20} MB",
                       "a config file of at most 1 MB; is this the right file?")
    else:
        root = _compose(reader, data)
        if root is not None:
            built = build_config(reader, root, kinds, alert_types)
    warnings = check_files(path, reader.files, reader.marks)
    # the config's own problems first, then those of a file it names and that was checked with it
    problems = sorted(reader.problems + warnings, key=lambda p: (p.file != path, p.file, p.line, p.column))
    if built is None or any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    config = Config(**{**built, "path": path, "marks": MappingProxyType(reader.marks),
                       "named_files": tuple(reader.files)})
    return config, [p for p in problems if p.severity == "warning"]

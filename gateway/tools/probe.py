"""`spc-gateway probe --config FILE SOURCE [ADDRESS]`: read one source (or one address) now.

A dispatcher: the source's plugin (gateway.sources.registry) probes it, each protocol in its own
package (gateway.sources.<protocol>.probe). A source type no plugin is registered for is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from gateway.config import Config, ConfigError
from gateway.config.kinds import and_list
from gateway.sources.registry import SOURCES, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The probe command's arguments."""
    parser.add_argument("--config", required=True, help="configuration file")
    parser.add_argument("source", help="name of a source in the configuration")
    plugins = list(SOURCES)
    parser.add_argument("address", nargs="?", default=None,
                        help="a characteristic name, or: " + "; ".join(p.probe_address for p in plugins)
                             + ". Without it: " + ", ".join(p.probe_all for p in plugins) + ".")
    listening = ", ".join(p.kind.label for p in plugins if p.waits)
    parser.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                        help=f"{listening}: how long to listen for a message (default 5)")


def run(args: argparse.Namespace) -> int:
    """Probe and print; 0 when something was read, 1 when the input is wrong or the read failed."""
    out: TextIO = sys.stdout
    try:
        config, _warnings = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.config}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    names = [s.name for s in config.sources]
    if args.source not in names:
        print(f"no source named {args.source!r} in {args.config} (sources: {', '.join(names) or 'none'})",
              file=sys.stderr)
        return 1
    return asyncio.run(probe_source(config, args.source, args.address, out, wait=args.wait))


async def probe_source(config: Config, source_name: str, address: str | None, out: TextIO, *,
                       wait: float = 5.0) -> int:
    """Probe one source of a loaded config; returns the exit status."""
    source_cfg = config.source(source_name)
    if source_cfg.type not in SOURCES:  # not from a loaded file: the config refuses an unknown type
        out.write(f"{source_name}: probe cannot read a source of type {source_cfg.type!r} "
                  f"(it reads {and_list(SOURCES.types())})\n")
        return 1
    plugin = SOURCES[source_cfg.type]
    return await plugin.probe(config, source_cfg, address, out, wait=wait)

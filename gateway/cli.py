"""`spc-gateway`: argument parsing only; each command calls one function elsewhere.

Exit status: 0 success, 1 the input is wrong (config, CSV, data), 2 usage error, 141 the reader of
the output went away (`| head`), as for any Unix tool ended by SIGPIPE.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable

from gateway import __version__
from gateway.core.paths import DEFAULT_CONFIG

EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE: what the shell reports for `seq 1 100000 | head`
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    """One line per event on stderr (journald adds its own timestamps, ours help outside systemd)."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT,
                        stream=sys.stderr, force=True)
    # the protocol libraries are chatty at INFO; their warnings still show
    for noisy in ("asyncua", "pymodbus", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon."""
    from gateway.config import ConfigError, require_files
    from gateway.sources.registry import load_config

    try:
        config, warnings = load_config(args.config)
    except ConfigError as exc:
        print(f"spc-gateway: refusing to start, {args.config} is not valid:\n{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"spc-gateway: cannot read the config file {args.config}: {exc.strerror}", file=sys.stderr)
        return 1
    missing = require_files(config, warnings)
    if missing:
        print("spc-gateway: refusing to start, files the config names are missing:", file=sys.stderr)
        for problem in missing:
            print(f"  {problem}", file=sys.stderr)
        return 1
    setup_logging(args.log_level or config.gateway.log_level)
    from gateway.app import serve
    from gateway.store import StoreError

    try:
        return asyncio.run(serve(args.config))
    except StoreError as exc:
        logging.getLogger("gateway").error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config.check import check_config
    from gateway.sources.registry import SOURCES, alert_type_names

    return check_config(args.file, SOURCES.kinds(), alert_types=alert_type_names())


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging(args.log_level or "INFO")
    from gateway.sim.demo import run_demo

    try:
        return asyncio.run(run_demo(args.listen, args.db, modbus_port=args.modbus_port,
                                    opcua_port=args.opcua_port, simulators_only=args.simulators_only))
    except KeyboardInterrupt:
        return 0


def cmd_limits(args: argparse.Namespace) -> int:
    from gateway.tools.clients import recalculate_limits

    return recalculate_limits(args)


def cmd_backup(args: argparse.Namespace) -> int:
    from gateway.tools.maintenance import backup_command

    return backup_command(args)


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.tools.maintenance import export_command

    return export_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spc-gateway", description="Edge SPC gateway for one production line.")
    parser.add_argument("--version", action="version", version=f"spc-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add("run", cmd_run, "run the daemon")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)

    p = add("check-config", cmd_check_config, "validate a configuration file without starting anything")
    p.add_argument("file")

    p = add("demo", cmd_demo, "a simulated line over real OPC UA and Modbus, with the HMI page")
    p.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT")
    p.add_argument("--db", default=None, help="SQLite file to keep (default: a temporary one)")
    p.add_argument("--modbus-port", type=int, default=0, help="the simulated PLC's port (default: any free one)")
    p.add_argument("--opcua-port", type=int, default=0, help="the simulated CMM's port (default: any free one)")
    p.add_argument("--simulators-only", action="store_true",
                   help="serve the simulated line without the gateway (for run --config config/demo.yaml)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)

    from gateway.tools import analyze

    p = add("analyze", analyze.run, "offline SPC analysis of a CSV file")
    analyze.add_arguments(p)

    from gateway.tools import probe

    p = add("probe", probe.run, "read one source (or one address) now and print what came back")
    probe.add_arguments(p)

    from gateway.tools import clients

    p = add("watch", clients.run_watch, "print live notifications in a terminal")
    clients.add_watch_arguments(p)
    p = add("status", clients.run_status, "what the running gateway's /healthz says, readably")
    clients.add_status_arguments(p)

    alert = sub.add_parser("alert", help="alert commands")
    alert_sub = alert.add_subparsers(dest="alert_command", metavar="ACTION")
    alert_sub.required = True
    p = alert_sub.add_parser("create", help="create an alert through the WebSocket")
    p.set_defaults(handler=clients.run_create_alert, alert_action="create")
    clients.add_create_alert_arguments(p)
    from gateway.tools import alert_commands

    def add_alert(name: str, help_text: str, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        p = alert_sub.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
        p.set_defaults(handler=alert_commands.run, alert_action=name)
        return p

    alert_commands.add_parsers(add_alert)

    outputs = sub.add_parser("outputs", help="andon and interlock outputs")
    outputs_sub = outputs.add_subparsers(dest="outputs_command", metavar="ACTION")
    outputs_sub.required = True
    from gateway.tools import output_commands

    p = outputs_sub.add_parser("test", help="write an output by hand through the running daemon (commissioning)")
    p.set_defaults(handler=output_commands.run)
    output_commands.add_arguments(p)

    limits = sub.add_parser("limits", help="control limit versions")
    limits_sub = limits.add_subparsers(dest="limits_command", metavar="ACTION")
    limits_sub.required = True
    p = limits_sub.add_parser("recalculate", help="a new limits version from stored subgroups (explicit, logged)")
    p.set_defaults(handler=cmd_limits)
    p.add_argument("--url", default="ws://127.0.0.1:8000", type=clients.gateway_url)
    p.add_argument("--token", default=None)
    p.add_argument("--product", type=int, required=True)
    p.add_argument("--characteristic", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--from-subgroup", type=int, default=None)
    p.add_argument("--subgroups", type=int, default=25)

    p = add("backup", cmd_backup, "a consistent copy of the database, safe while the daemon runs")
    p.add_argument("file", help="where to write the copy")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--db", default=None, help="database file (default: storage.path of --config)")

    p = add("export", cmd_export, "measurements of one product as CSV, for quality engineers")
    p.add_argument("--config", default=None, help=f"configuration file (default {DEFAULT_CONFIG})")
    p.add_argument("--db", default=None)
    p.add_argument("--timezone", default=None, metavar="ZONE",
                   help="zone of --from/--to without an offset and of the times written (default: "
                        "gateway.timezone of the config; UTC when --db is given and no config is found)")
    p.add_argument("--product", type=int, required=True)
    p.add_argument("--characteristic", default=None, metavar="NAME",
                   help="only this characteristic (the file is then an `analyze` input)")
    p.add_argument("--from", dest="start", default=None, help="ISO 8601 date or time")
    p.add_argument("--to", dest="end", default=None, help="ISO 8601 date or time")
    p.add_argument("--format", choices=["csv"], default="csv")
    p.add_argument("--output", "-o", default="-")
    return parser


def _quiet_broken_pipe() -> int:
    """The reader of stdout (or stderr) is gone: end without a traceback, and without the one Python
    would print when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):  # replaced or closed stream (tests capture them)
            pass
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["analyze"]:
        from gateway.tools import analyze
        argv = analyze.join_negative_numbers(argv)
    try:
        args = parser.parse_args(argv)  # --help prints too
    except BrokenPipeError:
        return _quiet_broken_pipe()
    if args.handler is cmd_run:  # the daemon prints nothing; a broken pipe there is a socket's, and a bug
        return int(args.handler(args) or 0)
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe found at exit is a closed pipe too
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()


if __name__ == "__main__":
    sys.exit(main())

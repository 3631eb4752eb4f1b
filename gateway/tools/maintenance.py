"""The command line of `spc-gateway backup` and `spc-gateway export`: arguments -> store.maintenance.

The database work (online backup, CSV export) lives in gateway.store.maintenance; this module finds the
database and the time zone from --db, --config or the default config, and prints the outcome.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile

from gateway.store.maintenance import MaintenanceError, backup, export_csv, refuse_database_files
from gateway.store.schema import StoreError


def _database_and_zone(args) -> tuple[str, _dt.tzinfo]:
    """The database file and time zone from --db, or from storage.path and gateway.timezone of --config."""
    if getattr(args, "db", None):
        return args.db, _dt.UTC
    from zoneinfo import ZoneInfo

    from gateway.config import ConfigError
    from gateway.sources.registry import load_config

    try:
        config, _warnings = load_config(args.config)
    except ConfigError as exc:
        raise MaintenanceError(f"{args.config} is not valid:\n{exc}") from exc
    except OSError as exc:
        raise MaintenanceError(f"cannot read the config file {args.config} ({exc.strerror}): give --config "
                               "or --db FILE") from exc
    try:
        zone: _dt.tzinfo = ZoneInfo(config.gateway.timezone)
    except (KeyError, ValueError):
        zone = _dt.UTC
    return config.storage.path, zone


def _export_database_and_zone(args) -> tuple[str, _dt.tzinfo, str]:
    """The database, the zone of export's times, and where that zone came from (said on stderr).

    The zone is --timezone, else gateway.timezone of the config: of --config, or of the default config
    when it exists, also with --db (a backup of this gateway's database is in this gateway's zone).
    Only with --db and no config at all is it UTC, and the summary line says so.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from gateway.config import ConfigError
    from gateway.core.paths import DEFAULT_CONFIG
    from gateway.sources.registry import load_config

    zone: _dt.tzinfo | None = None
    origin = ""
    if args.timezone is not None:
        try:
            zone = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise MaintenanceError(f"--timezone {args.timezone!r} is not a known time zone (for example "
                                   "Asia/Seoul, Europe/Berlin, UTC)") from None
        origin = "--timezone"
    config_path = args.config or DEFAULT_CONFIG
    wanted = args.db is None or (zone is None and (args.config is not None or os.path.isfile(config_path)))
    db_path = args.db
    if wanted:
        try:
            config, _warnings = load_config(config_path)
        except ConfigError as exc:
            raise MaintenanceError(f"{config_path} is not valid:\n{exc}") from exc
        except OSError as exc:
            raise MaintenanceError(f"cannot read the config file {config_path} ({exc.strerror}): give --config, "
                                   "or --db FILE with --timezone ZONE") from exc
        db_path = db_path or config.storage.path
        if zone is None:
            zone, origin = ZoneInfo(config.gateway.timezone), f"gateway.timezone of {config_path}"
    if zone is None:
        zone, origin = _dt.UTC, "no --timezone and no config; give --timezone ZONE for local times"
    return db_path, zone, origin


def _parse_time(text: str | None, option: str, zone: _dt.tzinfo) -> float | None:
    if text is None:
        return None
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise MaintenanceError(f"{option} {text!r} is not an ISO 8601 date or time (for example 2024-05-01 "
                               "or 2024-05-01T06:00:00+09:00)") from None
    if moment.tzinfo is None:  # a plain date or time is meant in the gateway's own zone
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def backup_command(args) -> int:
    """`spc-gateway backup FILE [--config | --db]`: online copy with a progress bar on stderr."""
    import sys

    interactive = sys.stderr.isatty()

    def bar(done: int, total: int) -> None:
        if interactive and total:
            filled = 30 * done // total
            print(f"\rbackup [{'#' * filled}{'.' * (30 - filled)}] {100 * done // total:3d}% "
                  f"({done}/{total} pages)", end="", file=sys.stderr, flush=True)

    try:
        db_path, _zone = _database_and_zone(args)
        backup(db_path, args.file, bar)
    except StoreError as exc:
        print(f"{chr(10) if interactive else ''}spc-gateway backup: {exc}", file=sys.stderr)
        return 1
    size = os.path.getsize(args.file)
    print(f"{chr(10) if interactive else ''}backup of {db_path} written to {args.file} "
          f"({size / 1e6:.1f} MB, checked)", file=sys.stderr)
    return 0


def _export_to_file(db_path: str, args, start: float | None, end: float | None, zone: _dt.tzinfo) -> int:
    """Export into a temporary file beside args.output, moved over it only when complete: a failed
    export leaves no half-written CSV and keeps a file of that name as it was."""
    folder = os.path.dirname(os.path.abspath(args.output))
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(args.output)}.", suffix=".partial")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # what open(..., "w") would have made
        with open(fd, "w", newline="", encoding="utf-8") as out:
            count = export_csv(db_path, args.product, start, end, out, tz=zone,
                               characteristic=args.characteristic)
        os.replace(partial, args.output)
        return count
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def export_command(args) -> int:
    """`spc-gateway export --product ID [--from] [--to] --format csv [-o FILE]`."""
    import sys

    try:
        db_path, zone, origin = _export_database_and_zone(args)
        start = _parse_time(args.start, "--from", zone)
        end = _parse_time(args.end, "--to", zone)
        if args.output in (None, "-"):
            count = export_csv(db_path, args.product, start, end, sys.stdout, tz=zone,
                               characteristic=args.characteristic)
        else:
            refuse_database_files(db_path, args.output, "export")
            count = _export_to_file(db_path, args, start, end, zone)
    except BrokenPipeError:  # `export | head`: the reader is gone; the command line ends quietly
        raise
    except OSError as exc:
        print(f"spc-gateway export: cannot write {args.output} ({exc.strerror})", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"spc-gateway export: {exc}", file=sys.stderr)
        return 1
    which = f" ({args.characteristic})" if args.characteristic else ""
    print(f"{count} measurements of product {args.product}{which} exported; times in {zone} ({origin})",
          file=sys.stderr)
    return 0

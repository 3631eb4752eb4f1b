"""`spc-gateway alert list|ack|comment|shelve|unshelve|resolve`: the alarm list from a terminal.

Each is one WebSocket command (`get_alerts`, `acknowledge_alert`, ...) sent through `clients.command`,
so a terminal is checked exactly like a line-side screen: the same token and role, the same field
checks, the same state rules, and every change is stored with who and when and reaches every screen.
Exit status: 0 done, 1 the gateway refused or could not be reached (the message says which), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

from gateway.outputs.websocket.protocol import ALERT_STATUSES, MAX_SHELVE_S
from gateway.tools.clients import DEFAULT_URL, ClientError, command, gateway_url

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h)?\s*$")  # ASCII digits: \d takes any script's
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
TITLE_WIDTH = 60  # characters of the title in the table; --json has it whole


def shelve_duration(text: str) -> float:
    """'90s', '30m', '2h' or plain seconds -> seconds (above 0, at most 8 h); argparse type."""
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else None
    if seconds is None or not 0 < seconds <= MAX_SHELVE_S:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shelve time: a number with s, m or h above 0 and "
                                         "at most 8h, e.g. 30m or 2h (a plain number is seconds)")
    return seconds


def _status(text: str) -> str:
    word = text.strip().upper()
    if word not in ALERT_STATUSES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a status (one of {', '.join(ALERT_STATUSES)})")
    return word


def _limit(text: str) -> int:
    if not text.strip().isascii() or not text.strip().isdigit() or not 1 <= int(text) <= 500:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 500")
    return int(text)


# ---------------------------------------------------------------- output

def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _width(text: str) -> int:
    """Columns the text takes in a terminal: Korean (wide) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # a message with newlines stays one row
    return text if len(text) <= width else text[:width - 1] + "…"


def format_table(alerts: list[dict[str, Any]]) -> str:
    """Alerts as an aligned table, newest first, one row each."""
    if not alerts:
        return "no alerts"
    header = ("ID", "P", "STATUS", "TYPE", "PRODUCT", "CHARACTERISTIC", "CREATED", "N", "TITLE")
    rows = [header]
    for a in alerts:
        status = a.get("status", "")
        if status == "SHELVED" and a.get("shelved_until"):
            status += f" until {str(a['shelved_until'])[11:16]}"
        rows.append((_cell(a.get("id")), f"P{_cell(a.get('priority'))}", status, _cell(a.get("alert_type")),
                     _cell(a.get("product_code")), _cell(a.get("characteristic")),
                     str(a.get("created_at", ""))[:19].replace("T", " "), _cell(a.get("occurrences", 1)),
                     _clip(_cell(a.get("title")), TITLE_WIDTH)))
    widths = [max(_width(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(_pad(cell, w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
                     for row in rows)


def describe(alert: dict[str, Any]) -> str:
    """One alert after a change, in one line."""
    where = "/".join(str(x) for x in (alert.get("product_code"), alert.get("characteristic")) if x)
    line = (f"alert {alert.get('id')} is {alert.get('status')}: P{alert.get('priority')} {alert.get('alert_type')} "
            f"{where} {alert.get('title')}")
    if alert.get("status") == "SHELVED" and alert.get("shelved_until"):
        line += f" (until {alert['shelved_until']})"
    return line


# ---------------------------------------------------------------- the commands

def _body(args: argparse.Namespace) -> dict[str, Any]:
    """The WebSocket command of one `alert` action."""
    action = args.alert_action
    if action == "list":
        body: dict[str, Any] = {"type": "get_alerts", "limit": args.limit}
        for key, value in (("status", args.status), ("product_id", args.product), ("before_id", args.before_id)):
            if value is not None:
                body[key] = value
        return body
    body = {"alert_id": args.alert_id, "user": args.user}
    if action == "ack":
        body.update(type="acknowledge_alert")
        if args.comment:
            body["comment"] = args.comment
    elif action == "comment":
        body.update(type="comment_alert", comment=args.comment)
    elif action == "shelve":
        body.update(type="shelve_alert", duration_s=args.duration, reason=args.reason)
    elif action == "unshelve":
        body.update(type="unshelve_alert")
    elif action == "resolve":
        body.update(type="resolve_alert", cause=args.cause)
        if args.action:
            body["action"] = args.action
    else:  # pragma: no cover - argparse offers only the actions above
        raise AssertionError(action)
    return body


def run(args: argparse.Namespace) -> int:
    """One `spc-gateway alert ...` action (create is in clients.py)."""
    name = f"spc-gateway alert {args.alert_action}"
    if args.alert_action != "list" and not (args.user or "").strip():
        print(f"{name}: who does this? give --user NAME (stored with the change)", file=sys.stderr)
        return 2
    try:
        reply = asyncio.run(command(args.url, _body(args), args.token))
    except ClientError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    if args.alert_action == "list":
        alerts = reply.get("alerts", [])
        print(json.dumps(alerts, ensure_ascii=False, indent=2) if args.json else format_table(alerts))
    else:
        alert = reply["alert"]
        print(json.dumps(alert, ensure_ascii=False, indent=2) if args.json else describe(alert))
    return 0


def _common(parser: argparse.ArgumentParser, *, user: bool = True) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, type=gateway_url, help=f"gateway address (default {DEFAULT_URL})")
    parser.add_argument("--token", default=None, help="access token (or SPC_GATEWAY_TOKEN); operator role to change")
    parser.add_argument("--json", action="store_true", help="print the gateway's JSON instead of text")
    if user:
        parser.add_argument("--user", default=os.environ.get("USER"),
                            help="who does it, stored with the change (default: $USER)")


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `alert` actions other than create; `add(name, help, aliases=())` makes a subparser that runs
    `run` with `alert_action` set to name."""
    p = add("list", "alerts, newest first, as a table (or --json)")
    _common(p, user=False)
    p.add_argument("--status", type=_status, default=None, help="only this status: " + ", ".join(ALERT_STATUSES))
    p.add_argument("--product", type=int, default=None, help="only this product id")
    p.add_argument("--limit", type=_limit, default=20, metavar="1-500", help="at most this many (default 20)")
    p.add_argument("--before-id", type=int, default=None, help="only alerts with a smaller id (the next page)")

    p = add("ack", "acknowledge an alert: someone is on it", aliases=("acknowledge",))
    p.add_argument("alert_id", type=int, metavar="ID")
    _common(p)
    p.add_argument("--comment", default=None)

    p = add("comment", "add a comment to an alert (what was checked, what was found)")
    p.add_argument("alert_id", type=int, metavar="ID")
    _common(p)
    p.add_argument("--comment", required=True)

    p = add("shelve", "hide an alert for a planned stop (at most 8 h); it comes back by itself")
    p.add_argument("alert_id", type=int, metavar="ID")
    _common(p)
    p.add_argument("--duration", type=shelve_duration, required=True, help="e.g. 30m, 2h (at most 8h)")
    p.add_argument("--reason", required=True)

    p = add("unshelve", "end a shelve now: the alert returns to the state it had")
    p.add_argument("alert_id", type=int, metavar="ID")
    _common(p)

    p = add("resolve", "close an alert with its cause and the corrective action")
    p.add_argument("alert_id", type=int, metavar="ID")
    _common(p)
    p.add_argument("--cause", required=True)
    p.add_argument("--action", default=None, help="the corrective action taken")

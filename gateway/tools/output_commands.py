"""`spc-gateway outputs test NAME on|off`: light an andon or set an interlock by hand, for commissioning.

The running daemon does the write, through the same connection to the PLC it drives the output on,
as the WebSocket command `test_output` (an operator's token, like `alert ack`). Writing to the PLC
from a second program instead would fight the daemon: it holds an RS-485 port alone, and it would not
know the device changed under it. The state is held for `--hold` (10 s by default, at most 10 min);
then the alerts decide again and the daemon writes what they say.
Exit status: 0 written, 1 the gateway refused, the write failed or the gateway could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

from gateway.tools.clients import DEFAULT_URL, ClientError, command, gateway_url

MAX_HOLD = 600.0
_HOLD = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m)?\s*$")


def hold_time(text: str) -> float:
    """'30s', '2m' or plain seconds, 0 to 10 min; argparse type."""
    match = _HOLD.match(text)
    seconds = float(match.group(1)) * (60.0 if match.group(2) == "m" else 1.0) if match else None
    if seconds is None or seconds > MAX_HOLD:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hold time: 0 to 10m, e.g. 30s or 2m "
                                         "(a plain number is seconds)")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `spc-gateway outputs test`."""
    parser.add_argument("name", help="the output's name in outputs:")
    parser.add_argument("state", choices=("on", "off"))
    parser.add_argument("--hold", type=hold_time, default=10.0,
                        help="seconds the state holds before the alerts decide again (default 10s, at most 10m)")
    parser.add_argument("--url", default=DEFAULT_URL, type=gateway_url, help=f"gateway address (default {DEFAULT_URL})")
    parser.add_argument("--token", default=None, help="an operator's token (or SPC_GATEWAY_TOKEN)")
    parser.add_argument("--user", default=os.environ.get("USER") or "maintenance",
                        help="who tests (logged by the daemon)")


def run(args: argparse.Namespace) -> int:
    """Write once through the daemon and say what the output now holds."""
    body = {"type": "test_output", "output": args.name, "state": args.state, "user": args.user,
            "hold_s": args.hold}
    try:
        reply = asyncio.run(command(args.url, body, args.token))
    except ClientError as exc:
        print(f"spc-gateway: {exc}", file=sys.stderr)
        return 1
    output = reply.get("output") or {}
    print(f"{args.name}: {output.get('state')} (source {output.get('source')}); held {args.hold:g} s, "
          f"then the alerts decide again (now: {output.get('wanted')})")
    return 0

"""Command-line clients of a running gateway: `watch`, `alert create`, `status`, `limits recalculate`.

They speak the same WebSocket protocol as the screens (the seed's test_websocket.py done properly):
`watch` resumes with `?since=` after a dropped connection, so a terminal misses nothing either.
A token comes from --token or the SPC_GATEWAY_TOKEN environment variable and travels as the
subprotocol `bearer.TOKEN`, which keeps it out of URLs and logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

DEFAULT_URL = "ws://127.0.0.1:8000"
RECONNECT_MAX = 10.0  # seconds between attempts at most, while the gateway is away
REPLY_TIMEOUT = 10.0


class ClientError(Exception):
    """The gateway refused or could not be reached; the message says which."""


class ReaderGone(BrokenPipeError):
    """Whoever read our output closed it (`watch | head`): unlike a broken socket, no reason to retry."""


def _emit(out: Callable[[str], None], line: str) -> None:
    try:
        out(line)
    except BrokenPipeError as exc:
        raise ReaderGone(*exc.args) from None


def gateway_url(text: str) -> str:
    """argparse type of --url: a gateway address the commands can use, else a usage error (exit 2).

    Checked before anything connects, so that `--url ws://[::1` or `--url host:abc` is one line naming
    the option instead of urllib's or websockets' traceback."""
    try:
        parts = urlsplit(text if "://" in text else f"ws://{text}")
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a gateway address ({exc}); "
                                         "use HOST:PORT or ws://HOST:PORT") from None
    if parts.scheme not in ("ws", "wss", "http", "https"):
        raise argparse.ArgumentTypeError(f"{text!r}: the scheme must be ws, wss, http or https")
    if not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} names no host; use HOST:PORT or ws://HOST:PORT")
    return text


def endpoint(url: str, product: int | None = None) -> str:
    """ws://host:port[/...] -> the endpoint URL (general feed, or one product's)."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else (
        f"/ws/spc/product/{product}/" if product is not None else "/ws/spc/notifications/")
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def http_base(url: str) -> str:
    """The same gateway's HTTP base URL."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _token(token: str | None) -> str | None:
    return token or os.environ.get("SPC_GATEWAY_TOKEN") or None


def _connect(url: str, token: str | None) -> Any:
    return connect(url, subprotocols=[Subprotocol(f"bearer.{token}")] if token else None, open_timeout=REPLY_TIMEOUT,
                   max_size=None)


# ---------------------------------------------------------------- watch

def format_message(message: dict[str, Any]) -> str | None:
    """One protocol message as one terminal line (None for messages not worth a line)."""
    kind, seq = message.get("type"), message.get("seq")
    stamp = str(message.get("timestamp", ""))[11:19]
    head = f"{stamp} #{seq}" if seq is not None else stamp
    if kind == "connection":
        return f"{stamp} {message.get('message')} ({message.get('gateway')}, role {message.get('role')})"
    if kind == "alert":
        a = message["alert"]
        where = "/".join(str(x) for x in (a.get("product_code"), a.get("characteristic")) if x)
        return (f"{head} ALERT P{a.get('priority')} {a.get('status')} {where} {a.get('alert_type')}: "
                f"{a.get('title')} - {a.get('message')} (id {a.get('id')}, x{a.get('occurrences', 1)})")
    if kind == "measurement":
        m = message["measurement"]
        flags = ("" if m.get("is_within_spec") is not False else " OUT-OF-SPEC") + (
            "" if m.get("is_within_control") is not False else " OUT-OF-CONTROL")
        return (f"{head} measurement {m.get('product_code')}/{m.get('characteristic')} "
                f"{m.get('measurement_value')} (sample {m.get('sample_number')}){flags}")
    if kind == "violation":
        v = message["violation"]
        # a rule that keeps firing: its first violation, then an update with `count` at most once a second
        held = f", still holds ({v.get('count')} points)" if v.get("continuing") else ""
        return (f"{head} VIOLATION {v.get('product_code')}/{v.get('characteristic')} rule {v.get('rule')} "
                f"{v.get('rule_name')} at subgroup {v.get('subgroup_number')}{held}")
    if kind == "capability":
        c = message["capability"]
        return (f"{head} capability {c.get('product_code')}/{c.get('characteristic')} cp {c.get('cp')} "
                f"cpk {c.get('cpk')} pp {c.get('pp')} ppk {c.get('ppk')}")
    if kind == "alerts":
        lines = [f"{stamp} {len(message['alerts'])} unresolved alert(s)"]
        lines += [format_message({"type": "alert", "alert": a, "timestamp": message.get("timestamp")}) or ""
                  for a in message["alerts"]]
        return "\n".join(lines)
    if kind == "replay_complete":
        note = "" if message.get("complete") else " - older events are gone: the list above may be incomplete"
        return f"{stamp} replayed up to #{message.get('to_seq')}{note}"
    if kind == "subgroup":
        return None
    return f"{stamp} {json.dumps(message, ensure_ascii=False)}"


async def watch(url: str, product: int | None = None, token: str | None = None, *,
                out: Callable[[str], None] = print, raw: bool = False, max_messages: int | None = None) -> int:
    """Print live notifications; reconnect with ?since= after a drop; return after max_messages (tests)."""
    target, since, delay, count = endpoint(url, product), None, 0.5, 0
    while True:
        full = target + (("&" if "?" in target else "?") + f"since={since}" if since is not None else "")
        try:
            async with _connect(full, _token(token)) as ws:
                delay = 0.5
                async for frame in ws:
                    message = json.loads(frame)
                    if isinstance(message.get("seq"), int) and message["type"] != "connection":
                        since = message["seq"]
                    elif message["type"] == "connection" and since is None:
                        since = message["seq"]
                    line = json.dumps(message, ensure_ascii=False) if raw else format_message(message)
                    if line:
                        _emit(out, line)
                    count += 1
                    if max_messages is not None and count >= max_messages:
                        return 0
        except InvalidStatus as exc:
            raise ClientError(f"the gateway refused the connection: HTTP {exc.response.status_code} "
                              f"{exc.response.body.decode(errors='replace').strip()}") from None
        except ReaderGone:  # our reader (`| head`) is gone, not the gateway: stop, do not reconnect
            raise
        except (OSError, ConnectionClosed, TimeoutError) as exc:
            _emit(out, f"connection lost ({exc}); retrying in {delay:.1f} s")
        await asyncio.sleep(delay)
        delay = min(RECONNECT_MAX, delay * 2)


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `spc-gateway watch`."""
    parser.add_argument("--url", default=DEFAULT_URL, type=gateway_url, help=f"gateway address (default {DEFAULT_URL})")
    parser.add_argument("--product", type=int, default=None, help="only this product (its endpoint)")
    parser.add_argument("--token", default=None, help="access token (or SPC_GATEWAY_TOKEN)")
    parser.add_argument("--raw", action="store_true", help="print each message as JSON")


def _print_now(line: str) -> None:
    print(line, flush=True)


def run_watch(args: argparse.Namespace) -> int:
    """`spc-gateway watch`: until Ctrl-C."""
    try:
        # flushed line by line: `watch | grep ALERT` shows each alert at once, and `watch | head` ends
        # at the first line after head has gone
        return asyncio.run(watch(args.url, args.product, args.token, raw=args.raw, out=_print_now))
    except KeyboardInterrupt:
        return 0
    except (ClientError, InvalidURI) as exc:
        print(f"spc-gateway watch: {exc}", file=sys.stderr)
        return 1


# ---------------------------------------------------------------- commands over the WebSocket

async def command(url: str, message: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """Send one command and return its `result` (raises ClientError with the gateway's error)."""
    request_id = f"cli-{os.getpid()}"
    try:
        async with _connect(endpoint(url), _token(token)) as ws:
            await ws.send(json.dumps({**message, "request_id": request_id}, ensure_ascii=False))
            async with asyncio.timeout(REPLY_TIMEOUT):
                async for frame in ws:
                    reply = json.loads(frame)
                    if reply.get("request_id") != request_id:
                        continue  # the connection message, the snapshot, live events
                    if reply["type"] == "error":
                        raise ClientError(f"{reply['code']}: {_english(reply)}")
                    return reply
    except InvalidStatus as exc:
        raise ClientError(f"the gateway refused the connection: HTTP {exc.response.status_code}") from None
    except (OSError, TimeoutError, ConnectionClosed) as exc:
        raise ClientError(f"cannot reach the gateway at {url}: {exc}") from None
    raise ClientError("the gateway closed the connection without replying")


def _english(reply: dict[str, Any]) -> str:
    """The gateway's error in English, the CLI's language (`texts`), whatever `gateway.language` is."""
    return (reply.get("texts") or {}).get("en", {}).get("message") or reply["message"]


async def create_alert(url: str, *, product: int, alert_type: str, priority: int, title: str, message: str,
                       token: str | None = None, user: str | None = None) -> dict[str, Any]:
    """Create an alert (the seed's POST /api/spc/alerts/ body) through the WebSocket; returns it."""
    body: dict[str, Any] = {"type": "create_alert", "product_id": product, "alert_type": alert_type,
                            "priority": priority, "title": title, "message": message}
    if user:
        body["user"] = user
    return (await command(url, body, token))["alert"]


def add_create_alert_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `spc-gateway alert create`."""
    parser.add_argument("--url", default=DEFAULT_URL, type=gateway_url)
    parser.add_argument("--token", default=None)
    parser.add_argument("--product", type=int, required=True)
    parser.add_argument("--type", dest="alert_type", required=True, help="e.g. OUT_OF_SPEC, MANUAL")
    parser.add_argument("--priority", type=int, required=True, choices=range(1, 6), metavar="1-5")
    parser.add_argument("--title", required=True)
    parser.add_argument("--message", required=True)
    parser.add_argument("--user", default=os.environ.get("USER"))


def run_create_alert(args: argparse.Namespace) -> int:
    """`spc-gateway alert create`."""
    try:
        alert = asyncio.run(create_alert(args.url, product=args.product, alert_type=args.alert_type,
                                         priority=args.priority, title=args.title, message=args.message,
                                         token=args.token, user=args.user))
    except ClientError as exc:
        print(f"spc-gateway alert create: {exc}", file=sys.stderr)
        return 1
    print(f"alert {alert['id']} created: P{alert['priority']} {alert['alert_type']} {alert['product_code']} "
          f"{alert['title']}")
    return 0


def recalculate_limits(args: argparse.Namespace) -> int:
    """`spc-gateway limits recalculate`: a new limits version from stored subgroups."""
    body = {"type": "recalculate_limits", "product_id": args.product, "characteristic": args.characteristic,
            "user": args.user, "reason": args.reason, "subgroups": args.subgroups}
    if args.from_subgroup is not None:
        body["from_subgroup"] = args.from_subgroup
    try:
        reply = asyncio.run(command(args.url, body, args.token))
    except ClientError as exc:
        print(f"spc-gateway limits recalculate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(reply["limits"], ensure_ascii=False, indent=2))
    return 0


# ---------------------------------------------------------------- status

def status(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """GET /healthz: (HTTP status, report)."""
    request = urllib.request.Request(http_base(url) + "/healthz")
    if _token(token):
        request.add_header("Authorization", f"Bearer {_token(token)}")
    try:
        with urllib.request.urlopen(request, timeout=REPLY_TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # 503: unhealthy, with the same report
        return exc.code, json.loads(exc.read() or b"{}")


def format_status(code: int, report: dict[str, Any]) -> str:
    """The /healthz report, readably."""
    lines = [f"{report.get('gateway', '?')} {report.get('version', '')}: "
             f"{'OK' if code == 200 else 'NOT OK'} (HTTP {code}), up {report.get('uptime_s', '?')} s"]
    for name, source in (report.get("sources") or {}).items():
        lines.append(f"  source {name}: {source.get('state')} {source.get('last_error') or ''}".rstrip())
    for key, c in (report.get("characteristics") or {}).items():
        age = c.get("last_value_age_s")
        lines.append(f"  {key}: {'STALE' if c.get('stale') else 'ok'}, last value "
                     f"{'never' if age is None else f'{age} s ago'}, {c.get('readings', 0)} readings")
    store = report.get("store") or {}
    lines.append(f"  store: {store.get('size_bytes', '?')} bytes, {store.get('pending_rows', '?')} rows pending"
                 + (f", FAILING: {store.get('last_error')}" if store.get("failing") else ""))
    northbound = report.get("northbound")
    if northbound:
        lines.append("  northbound: " + ", ".join(f"{k} {v}" for k, v in northbound.items()
                                                   if not isinstance(v, dict | list)))
    for name, output in (report.get("outputs") or {}).items():  # andon and interlock outputs
        lines.append(f"  output {name}: {output.get('state') or 'unknown'} (wants {output.get('wanted')}, source "
                     f"{output.get('source')}), {output.get('write_failures', 0)} failed writes"
                     + (f", FAILING: {output.get('last_error')}" if output.get("failing") else ""))
    clients = report.get("clients") or {}
    lines.append(f"  clients: {clients.get('clients', 0)} connected, {clients.get('cut_off', 0)} cut off")
    shown = ("sources", "characteristics", "store", "pipeline", "process", "northbound", "clients")
    for name, output in report.items():  # every other output that runs (Sparkplug, the OPC UA server...)
        if isinstance(output, dict) and name not in shown:
            lines.append(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in output.items()
                                                   if not isinstance(v, dict | list)))
    return "\n".join(lines)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `spc-gateway status`."""
    parser.add_argument("--url", default=DEFAULT_URL, type=gateway_url)
    parser.add_argument("--token", default=None)
    parser.add_argument("--json", action="store_true", help="print the raw /healthz JSON")


def run_status(args: argparse.Namespace) -> int:
    """`spc-gateway status`: 0 healthy, 1 unhealthy or unreachable."""
    try:
        code, report = status(args.url, args.token)
    except (OSError, ValueError) as exc:
        print(f"spc-gateway status: cannot reach {http_base(args.url)}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_status(code, report))
    return 0 if code == 200 else 1

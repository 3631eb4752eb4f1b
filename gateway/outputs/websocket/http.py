"""Plain HTTP on the WebSocket port: the HMI page and its files, /healthz, /metrics, /api/spc/...

websockets answers plain HTTP through `process_request` only, one request per connection. These routes
are read-only (GET, HEAD). The one write, the seed's `POST /api/spc/alerts/`, is answered in ws.py
(it is a `create_alert` command; websockets_private.BodyReadingConnection reads its body); any other method gets 405 with a
sentence saying where writes go.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import mimetypes
import re
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from websockets.datastructures import Headers
from websockets.http11 import Response

from gateway.config import Config
from gateway.core.model import iso_time
from gateway.outputs.websocket.inputs import INT64_MAX, MAX_QUERY_FIELDS, whole_number
from gateway.outputs.websocket.protocol import ALERT_STATUSES

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_STATIC_BYTES = 4 << 20  # the page's files are small; anything bigger is not ours to serve
MAX_STATIC_NAME = 200  # characters of a static file's path; ours are short, the file system's limit is 255 bytes
POST_REFUSED = ("This gateway's HTTP API is read-only (GET), except POST /api/spc/alerts/ with a JSON body "
                "to create an alert. Every other write goes over the WebSocket (/ws/spc/notifications/), "
                "e.g. `acknowledge_alert`; or run `spc-gateway alert create --product ID --type T --priority P "
                "--title ... --message ...`.\n")
PLACEHOLDER = ("<!doctype html><meta charset=utf-8><title>spc-gateway</title>"
               "<h1>spc-gateway</h1><p>The HMI page is not installed. WebSocket: /ws/spc/notifications/</p>")
_PRODUCT_PATH = re.compile(r"^/api/spc/products/([0-9]{1,9})/(measurements|capability)/$")  # ASCII digits
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
          ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
          ".woff2": "font/woff2", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


def response(status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8", *,
             cache: str = "no-store", extra: dict[str, str] | None = None) -> Response:
    """An HTTP response with our headers (the connection closes after it: websockets has no keep-alive)."""
    data = body.encode() if isinstance(body, str) else body
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(data))), ("Content-Type", content_type),
                       ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")])
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status, HTTPStatus(status).phrase, headers, data)


def json_response(status: int, obj: Any, **kwargs: Any) -> Response:
    """A JSON response (UTF-8, Korean kept readable)."""
    return response(status, json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str),
                    "application/json; charset=utf-8", **kwargs)


_MEASUREMENT_FIELDS = ("id", "product_id", "product_code", "characteristic", "measurement_value", "sample_number",
                       "subgroup_number", "is_within_spec", "is_within_control", "measured_at",
                       "part", "part_unknown")  # the last two: short-run SPC (protocol.md, added fields)
_TIME_FIELDS = ("measured_at", "analyzed_at", "effective_from", "stored_at", "at")


def measurement_object(row: dict[str, Any], tz: Any) -> dict[str, Any]:
    """A stored measurement row as the protocol's measurement object (ISO time with the zone's offset)."""
    out = {key: row.get(key) for key in _MEASUREMENT_FIELDS}
    if isinstance(out["measured_at"], int | float):
        out["measured_at"] = iso_time(out["measured_at"], tz)
    return out


def with_iso_times(row: dict[str, Any] | None, tz: Any) -> dict[str, Any] | None:
    """A stored row with its POSIX timestamps as ISO 8601 (what leaves the process)."""
    if row is None:
        return None
    return {k: iso_time(v, tz) if k in _TIME_FIELDS and isinstance(v, int | float) else v for k, v in row.items()}


class BadQuery(Exception):
    """A query parameter that cannot be used: 400 with the reason."""


class HttpRoutes:
    """GET routes; `handle` returns the response for one request."""

    def __init__(self, config: Config, store: Any, *, health: Callable[[], dict[str, Any]],
                 metrics: Callable[[], str], static_dir: Path = STATIC_DIR,
                 authorized: Callable[[str, Any], bool] | None = None):
        self.config = config
        self.store = store
        self.health = health
        self.metrics = metrics
        self.static_dir = static_dir.resolve()
        self.authorized = authorized or (lambda _path, _headers: True)
        self.tz = ZoneInfo(config.gateway.timezone)

    async def handle(self, method: str, target: str, headers: Any) -> Response:
        """Answer one plain HTTP request."""
        parts = urlsplit(target)
        if method not in ("GET", "HEAD"):
            allow = "GET, POST" if parts.path == "/api/spc/alerts/" else "GET"
            return response(405, POST_REFUSED, extra={"Allow": allow})
        try:
            path, query = parts.path, parse_qs(parts.query, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            return json_response(400, {"error": f"at most {MAX_QUERY_FIELDS} query parameters"})
        try:
            if path == "/healthz":
                report = self.health()
                return json_response(200 if report.get("ok", True) else 503, report)
            if path == "/metrics":
                return response(200, self.metrics(), "text/plain; version=0.0.4; charset=utf-8")
            if path.startswith("/api/"):
                if not self.authorized(target, headers):
                    return json_response(401, {"error": "a valid token is required (?token= or "
                                                        "Authorization: Bearer)"})
                return await self._api(path, query)
            if path == "/" or path == "/index.html":
                return self._static("index.html", headers)
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):], headers)
        except BadQuery as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(404, {"error": f"no such page: {path[:200]}"})

    # ------------------------------------------------------------------ read API

    async def _api(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/api/spc/products/":
            return json_response(200, await self._products())
        if path == "/api/spc/outputs/":  # the andon lamps of the page: 200 even while a source is down
            return json_response(200, {"outputs": self.health().get("outputs") or {}})
        if path == "/api/spc/alerts/":
            status = _one(query, "status")
            if status is not None and status.upper() not in ALERT_STATUSES:
                raise BadQuery(f"status must be one of {', '.join(ALERT_STATUSES)}")
            product_filter = _int(query, "product", 1, 10**9)
            alerts = await self.store.alerts(status=status.upper() if status else None,
                                             product_id=product_filter,
                                             limit=_int(query, "limit", 1, 500) or 10,
                                             before_id=_int(query, "before_id", 1, INT64_MAX))
            return json_response(200, {"alerts": alerts})
        match = _PRODUCT_PATH.match(path)
        if match is None:
            return json_response(404, {"error": f"no such API path: {path[:200]}"})
        product_id, what = int(match.group(1)), match.group(2)
        product = next((p for p in self.config.products if p.id == product_id), None)
        if product is None:
            return json_response(404, {"error": f"there is no product {product_id}"})
        if what == "capability":
            rows = await self.store.latest_capability(product_id)
            return json_response(200, {"product_id": product_id,
                                       "capability": [with_iso_times(r, self.tz) for r in rows]})
        characteristic = _one(query, "characteristic")
        if characteristic is not None and all(c.name != characteristic for c in product.characteristics):
            return json_response(404, {"error": f"product {product_id} has no characteristic {characteristic!r}"})
        limit = _int(query, "limit", 1, 5000) or 100
        rows = [measurement_object(r, self.tz) for r in await self.store.measurements(product_id, characteristic,
                                                                                       limit)]
        return json_response(200, {"product_id": product_id, "characteristic": characteristic,
                                   "measurements": rows})

    async def _products(self) -> dict[str, Any]:
        products = []
        for product in self.config.products:
            characteristics = []
            for c in product.characteristics:
                characteristics.append({
                    "name": c.name, "unit": c.unit, "chart": c.chart, "subgroup_size": c.subgroup_size,
                    "spec": {"lsl": c.spec.lsl, "target": c.spec.target, "usl": c.spec.usl},
                    "rules": c.rules.label, "min_cpk": c.capability.min_cpk,
                    "limits": with_iso_times(await self.store.latest_limits(product.id, c.name), self.tz),
                })
                if c.short_run is not None:  # short-run SPC: the plot and each part number's own spec
                    characteristics[-1]["short_run"] = c.short_run
                    characteristics[-1]["parts"] = {p.name: {"target": p.target, "sigma": p.sigma, "lsl": p.lsl,
                                                             "usl": p.usl} for p in c.parts}
            products.append({"id": product.id, "code": product.code, "name": product.name,
                             "characteristics": characteristics})
        return {"gateway": self.config.gateway.name, "language": self.config.gateway.language,
                "products": products}

    # ------------------------------------------------------------------ static files

    def _static(self, relative: str, headers: Any) -> Response:
        file = self._resolve(relative)
        if file is None:
            if relative == "index.html":
                return response(200, PLACEHOLDER, "text/html; charset=utf-8", cache="no-cache")
            return json_response(404, {"error": "no such file"})
        stat = file.stat()
        if stat.st_size > MAX_STATIC_BYTES:
            return json_response(404, {"error": "no such file"})
        etag = '"' + hashlib.blake2s(f"{stat.st_mtime_ns}-{stat.st_size}".encode(), digest_size=8).hexdigest() + '"'
        # no-cache: the kiosk revalidates (cheap 304) so an updated page is never stale after an upgrade
        common = {"ETag": etag}
        if headers is not None and headers.get("If-None-Match") == etag:
            return response(304, b"", cache="no-cache", extra=common)
        content_type = _TYPES.get(file.suffix.lower()) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/json", "image/svg+xml"):
            content_type += "; charset=utf-8"
        return response(200, file.read_bytes(), content_type, cache="no-cache", extra=common)

    def _resolve(self, relative: str) -> Path | None:
        """The file under the static folder, or None; never anything outside it."""
        name = unquote(relative)
        if unquote(name) != name:  # double-encoded (%252e): refuse rather than guess
            return None
        if not name or len(name) > MAX_STATIC_NAME or "\\" in name or "\0" in name or name.startswith("/"):
            return None
        if any(part in ("", ".", "..") for part in name.split("/")):
            return None
        try:
            candidate = (self.static_dir / name).resolve()
            if not candidate.is_relative_to(self.static_dir) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # a name the file system refuses (too long, undecodable): not ours
            return None
        return candidate


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values and values[-1] != "" else None


def _int(query: dict[str, list[str]], name: str, lo: int, hi: int) -> int | None:
    raw = _one(query, name)
    if raw is None:
        return None
    value = whole_number(raw, lo, hi)
    if value is None:  # ASCII digits only: '²'.isdigit() is True, but int('²') fails
        raise BadQuery(f"{name} must be a whole number from {lo} to {hi}")
    return value



# ---------------------------------------------------------------- /metrics

_METRIC_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _metric(name: str) -> str:
    return "spc_gateway_" + _METRIC_NAME.sub("_", name).strip("_").lower()


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def render_metrics(app: dict[str, Any] | str, hub: dict[str, Any], alerts: dict[tuple[str, str], int],
                   refused: dict[str, int]) -> str:
    """Prometheus text format (0.0.4) from the app's report and the server's own numbers."""
    lines: list[str] = []

    def add(name: str, value: float, labels: dict[str, Any] | None = None) -> None:
        tail = ""
        if labels:
            tail = "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"
        lines.append(f"{name}{tail} {value:g}")

    for key, value in hub.items():
        if (number := _numeric(value)) is not None:
            add(_metric(f"ws_{key}"), number)
    for reason, count in refused.items():
        add("spc_gateway_ws_refused_total", count, {"reason": reason})
    lines.append("# TYPE spc_gateway_alerts gauge")
    for (state, alert_type), count in sorted(alerts.items()):
        add("spc_gateway_alerts", count, {"state": state, "type": alert_type})
    if isinstance(app, str):
        return "\n".join(lines) + "\n" + app.rstrip("\n") + "\n"
    for section, body in app.items():
        if (number := _numeric(body)) is not None:
            add(_metric(section), number)
        elif isinstance(body, dict) and section == "outputs":  # andon and interlock outputs, by name
            for name, entry in body.items():
                if isinstance(entry, dict):
                    add("spc_gateway_output_state", float(entry.get("state") == "on"), {"name": name})
                    add("spc_gateway_output_write_failures_total", float(entry.get("write_failures") or 0),
                        {"name": name})
        elif isinstance(body, dict) and section in ("sources", "characteristics"):
            for name, entry in body.items():
                for key, value in (entry or {}).items():
                    if key == "state":
                        add(_metric(f"{section}_connected"), float(value == "connected"), {"name": name})
                    elif (number := _numeric(value)) is not None:
                        add(_metric(f"{section}_{key}"), number, {"name": name})
        elif isinstance(body, dict):
            for key, value in body.items():
                if (number := _numeric(value)) is not None:
                    add(_metric(f"{section}_{key}"), number)
    return "\n".join(lines) + "\n"

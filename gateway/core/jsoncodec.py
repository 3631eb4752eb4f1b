"""JSON for the wire and the database: compact UTF-8, NaN and infinity as null.

One encoder for every event body, alert, outbox payload and WebSocket frame, so the bytes the hub sends
and the bytes the store keeps are the same; it lives here, below the store and the outputs, because both use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json(obj: Any) -> str:
    """Compact JSON; NaN and infinity become null (JSON has neither, and the plant's parsers reject them)."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON bytes, the same content as `_json` (NaN and infinity become null).

    orjson does the common case several times faster; what it refuses (a float or int subclass such as
    a numpy number, a non-string key, an integer beyond 64 bits) goes through `_json`, which accepts or
    refuses it exactly as before.
    """
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError
        return _json(obj).encode()

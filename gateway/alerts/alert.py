"""One alert as the service keeps it while it is unresolved: its protocol object and its lifecycle state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

Key = tuple[int | None, str | None, str, int | None]  # product, characteristic, alert_type, rule


@dataclass(eq=False)
class Alert:
    """An alert: `body` is the protocol object (the field names of docs/protocol.md), the rest is what
    the service needs to run its lifecycle.

    `body` keeps its fields in the order they were first set: that order is the wire order of the
    `alert` message and of the stored row (which is read back as it was written), so the same history
    gives the same bytes."""

    body: dict[str, Any]
    key: Key | None = None  # repeats with this key count on this alert; None: each is an alert of its own
    shelved_from: str | None = None  # OPEN or ACKNOWLEDGED: where a shelve returns to
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)  # the shelve's end
    last_emit: float = 0.0  # when its message last went out (occurrences are sent at most once a second)
    dirty: bool = False  # occurrences counted since then, not yet sent

    @classmethod
    def new(cls, product: Any, characteristic: str | None, alert_type: str, priority: int, title: str,
            message: str, created_at: str) -> Alert:
        """A new OPEN alert (id None until its batch allocates one)."""
        return cls({
            "id": None, "product_id": product.id if product else None,
            "product_code": product.code if product else None, "product_name": product.name if product else None,
            "characteristic": characteristic, "alert_type": alert_type, "priority": int(priority),
            "title": title, "message": message, "status": "OPEN", "created_at": created_at, "occurrences": 1,
        })

    @property
    def id(self) -> int:
        return int(self.body["id"])

    @property
    def status(self) -> str:
        return str(self.body["status"])

    def __getitem__(self, name: str) -> Any:
        """A protocol field, read as on the message (`alert["status"]`)."""
        return self.body[name]

    def message(self) -> dict[str, Any]:
        """The protocol object, as the `alert` message, a reply and the stored row carry it (a copy)."""
        return dict(self.body)

    def changed(self, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """The body an act would leave, built on a copy: the alert itself changes only once it is stored."""
        body = {**self.body, **changes}
        for name in drop:
            body.pop(name, None)
        return body

    def apply(self, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
        """Take the changes of a stored act (repeats counted meanwhile stay counted)."""
        self.body.update(changes)
        for name in drop:
            self.body.pop(name, None)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

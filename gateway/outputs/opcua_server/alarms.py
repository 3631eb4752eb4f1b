"""Alerts as OPC UA alarms: AlarmConditionType events on the product's object, Acknowledge and AddComment.

Each unresolved alert is one condition: a node `SPC/{code}/Alerts/{n}` of type AlarmConditionType
under its product (the gateway's own alerts, STORAGE, under SPC/Gateway), whose node id is the
event's ConditionId; a resolved alert's node serves the product's next alert. Every change of the alert (raised, repeated, acknowledged, commented, shelved,
resolved) is one event with the alert's state: ActiveState (not resolved), AckedState, Retain (not
resolved), Severity = priority x 200, Message = title and message. A resolved alert's last event has
Retain false.

Acknowledge and AddComment are the standard methods of the condition types (i=9111, i=9029), called
with the ConditionId as the object and the EventId of one of its events: they do what the WebSocket's
acknowledge_alert and comment_alert do, through the same AlertService acts, with the OPC UA user as
`user` and as `via`. ConditionRefresh (UaExpert's alarm view calls it) sends every unresolved
alert's state again to the subscription that asks. Every event is a fresh copy of the product's
template: asyncua keeps the retained events by ConditionId, and one shared object would make every
retained condition look like the last one sent.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import Node, Server, ua

from gateway.core.characters import unsafe_character
from gateway.core.texts import Refusal
from gateway.outputs.opcua_server.space import AddressSpace, parse_time, status, string_id
from gateway.outputs.opcua_server.users import operator

log = logging.getLogger("gateway.outputs.opcua_server")

COMMENT_MAX = 2000  # as the WebSocket's comments
EVENT_IDS_PER_ALERT = 100  # the EventIds an Acknowledge may name: the alert's latest events (two each)
SEVERITY_PER_PRIORITY = 200
# What a refused act becomes (the alert service's codes -> OPC UA status codes)
REFUSALS = {"not_found": ua.StatusCodes.BadNodeIdUnknown, "storage_unavailable": ua.StatusCodes.BadResourceUnavailable,
            "invalid_field": ua.StatusCodes.BadConditionBranchAlreadyAcked,
            "too_large": ua.StatusCodes.BadInvalidArgument}


def _text(value: Any) -> str | None:
    """The comment argument (LocalizedText, or a String from a lenient client); None when absent."""
    if isinstance(value, ua.Variant):
        value = value.Value
    if isinstance(value, ua.LocalizedText):
        value = value.Text
    return value if isinstance(value, str) else None


class AlarmBridge:
    """Alert events -> condition events; the condition methods -> the alert service."""

    def __init__(self, server: Server, space: AddressSpace, alerts: Any):
        self.server = server
        self.space = space
        self.alerts = alerts
        self.generators: dict[int | None, Any] = {}  # product id (None: the gateway) -> EventGenerator
        self.conditions: dict[int, ua.NodeId] = {}  # alert id -> condition node
        self.latest: dict[int, dict[str, Any]] = {}  # unresolved alert id -> its latest body (ConditionRefresh)
        self.free: dict[int | None, list[ua.NodeId]] = {}  # product id -> condition nodes of resolved alerts
        self.made = 0
        self.templates: dict[int | None, Any] = {}  # product id -> the generator's first event, copied per event
        self.event_ids: OrderedDict[bytes, int] = OrderedDict()  # EventId -> alert id
        self.events = 0
        self.acknowledged = 0
        self.commented = 0
        self.refused = 0

    async def start(self) -> None:
        sources = {pid: p.node for pid, p in self.space.products.items()}
        assert self.space.gateway is not None
        sources[None] = self.space.gateway  # type: ignore[index]
        for pid, node in sources.items():
            self.generators[pid] = await self.server.get_event_generator(
                ua.ObjectIds.AlarmConditionType, node)  # type: ignore[arg-type]  # a Node is taken too
            self.templates[pid] = self.generators[pid].event
            # the Server object notifies of its products' events: alarm clients subscribe there
            await self.server.get_node(ua.ObjectIds.Server).add_reference(node.nodeid, ua.ObjectIds.HasNotifier)
        # asyncua delivers an event only to those watching the node that emits it, not up the HasNotifier
        # references: so each event is emitted twice, by its product and by the Server object
        self.server_generator = await self.server.get_event_generator(ua.ObjectIds.AlarmConditionType)
        self.server_generator_node = self.server_generator.event.emitting_node
        link: Callable[[int, Any], None] = lambda method, callback: self.server.link_method(  # noqa: E731
            self.server.get_node(method), callback)
        link(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge, self.acknowledge)
        link(ua.ObjectIds.ConditionType_AddComment, self.add_comment)
        link(ua.ObjectIds.ConditionType_ConditionRefresh, self.refresh)
        link(ua.ObjectIds.ConditionType_ConditionRefresh2, self.refresh)
        self.refresh_start = await self.server.get_event_generator(ua.ObjectIds.RefreshStartEventType)
        self.refresh_end = await self.server.get_event_generator(ua.ObjectIds.RefreshEndEventType)

    async def on_alert(self, alert: dict[str, Any]) -> None:
        """One change of an alert: its condition's event (a new condition node first)."""
        alert_id = alert.get("id")
        if not isinstance(alert_id, int):
            return
        resolved = alert.get("status") == "RESOLVED"
        if alert_id not in self.conditions and not resolved:
            self.conditions[alert_id] = await self._condition_node(alert)
        node = self.conditions.get(alert_id)
        if node is None:  # resolved before we ever saw it open (a restart): nothing retained to clear
            return
        await self._emit(alert, node)
        if resolved:
            del self.conditions[alert_id]
            self.latest.pop(alert_id, None)
            self.free.setdefault(alert.get("product_id"), []).append(node)

    async def _condition_node(self, alert: dict[str, Any]) -> ua.NodeId:
        """A free condition node of the alert's product, or a new one. Nodes are reused, never deleted:
        asyncua's delete walks the whole address space per node (one condition took 1-2 s of the loop),
        and a condition going active again is what OPC UA expects of a condition instance anyway."""
        pid = alert.get("product_id")
        free = self.free.get(pid)
        if free:
            return free.pop()
        product = self.space.products.get(pid)  # type: ignore[arg-type]
        parent: Node = product.node if product is not None else self.space.gateway  # type: ignore[assignment]
        code = product.product.code if product is not None else "Gateway"
        self.made += 1
        node_id = string_id(f"SPC/{code}/Alerts/{self.made}", self.space.idx)
        node = await parent.add_object(node_id, ua.QualifiedName(f"Condition{self.made}", self.space.idx),
                                       objecttype=ua.ObjectIds.AlarmConditionType, instantiate_optional=False)
        await parent.add_reference(node.nodeid, ua.ObjectIds.HasCondition)
        # the instance has its own copies of the methods, which clients that browse the condition call
        # (node-opcua does): they do what the type's methods do
        for child in await node.get_children(refs=ua.ObjectIds.HasComponent, nodeclassmask=ua.NodeClass.Method):
            name = (await child.read_browse_name()).Name
            if name in ("Acknowledge", "AddComment"):
                self.server.link_method(child, self.acknowledge if name == "Acknowledge" else self.add_comment)
        return node.nodeid

    async def _emit(self, alert: dict[str, Any], condition: ua.NodeId, subscription_id: int | None = None) -> None:
        if alert.get("status") != "RESOLVED":
            self.latest[alert["id"]] = alert
        key = alert.get("product_id") if alert.get("product_id") in self.generators else None
        generator = self.generators[key]
        event = generator.event = copy.deepcopy(self.templates[key])
        status = alert.get("status")
        active, acked = status != "RESOLVED", status != "OPEN" and bool(alert.get("acknowledged_by")
                                                                          or status == "RESOLVED")
        title, message = alert.get("title") or "", alert.get("message") or ""
        event.Message = ua.LocalizedText(f"{title}: {message}" if title and message else title or message)
        event.Severity = int(alert.get("priority") or 1) * SEVERITY_PER_PRIORITY
        event.NodeId = condition  # the ConditionId
        event.ConditionName = alert.get("alert_type")
        event.BranchId = ua.NodeId()
        event.Retain = active
        event.Quality = ua.StatusCode()
        event.LastSeverity = event.Severity
        event.EnabledState = ua.LocalizedText("Enabled")
        setattr(event, "EnabledState/Id", True)
        event.ActiveState = ua.LocalizedText("Active" if active else "Inactive")
        setattr(event, "ActiveState/Id", active)
        event.AckedState = ua.LocalizedText("Acknowledged" if acked else "Unacknowledged")
        setattr(event, "AckedState/Id", acked)
        event.SuppressedOrShelved = status == "SHELVED"
        event.Comment = ua.LocalizedText(alert.get("comment") or "")
        event.ClientUserId = alert.get("resolved_by") or alert.get("acknowledged_by") or ""
        characteristic = self.space.products.get(alert.get("product_id"))  # type: ignore[arg-type]
        c = characteristic.characteristics.get(alert.get("characteristic", "")) if characteristic else None
        event.InputNode = c.nodes["Value"] if c is not None else ua.NodeId()
        when = parse_time(alert.get("resolved_at") or alert.get("acknowledged_at") or alert.get("created_at"))
        when = when or datetime.now(UTC)
        await generator.trigger(time_attr=when, subscription_id=subscription_id)
        upward = self.server_generator.event = copy.copy(event)  # the same fields, its own EventId
        upward.emitting_node = self.server_generator_node
        await self.server_generator.trigger(time_attr=when, subscription_id=subscription_id)
        self.events += 1
        for sent in (event, upward):
            self.event_ids[sent.EventId.Value if isinstance(sent.EventId, ua.Variant) else sent.EventId] = alert["id"]
        while len(self.event_ids) > EVENT_IDS_PER_ALERT * max(1, len(self.conditions)):
            self.event_ids.popitem(last=False)

    # ------------------------------------------------------------------ the methods

    def _alert_of(self, condition: ua.NodeId, event_id: Any) -> int | ua.StatusCode:
        alert_id = next((a for a, node in self.conditions.items() if node == condition), None)
        if alert_id is None:
            return status(ua.StatusCodes.BadNodeIdUnknown)
        raw = event_id.Value if isinstance(event_id, ua.Variant) else event_id
        if not isinstance(raw, bytes) or self.event_ids.get(raw) != alert_id:
            return status(ua.StatusCodes.BadEventIdUnknown)
        return alert_id

    async def _act(self, condition: ua.NodeId, event_id: Any, comment: Any, act: str) -> ua.StatusCode | list[Any]:
        caller = operator()
        if caller is None:  # anonymous and viewer sessions: read, browse and subscribe only
            self.refused += 1
            return status(ua.StatusCodes.BadUserAccessDenied)
        found = self._alert_of(condition, event_id)
        if isinstance(found, ua.StatusCode):
            self.refused += 1
            return found
        text = _text(comment)
        if text is not None and (len(text) > COMMENT_MAX or unsafe_character(text, multiline=True)):
            self.refused += 1
            return status(ua.StatusCodes.BadInvalidArgument)
        if act == "comment" and not text:
            return status(ua.StatusCodes.BadInvalidArgument)
        assert caller.name is not None
        try:  # the daemon runs the act with the user as `via` too (output.py)
            if act == "acknowledge":
                await self.alerts.acknowledge(found, caller.name, text or None)
                self.acknowledged += 1
            else:
                await self.alerts.comment(found, caller.name, text or "")
                self.commented += 1
        except Refusal as exc:
            self.refused += 1
            return status(REFUSALS.get(exc.code, ua.StatusCodes.BadInvalidState))
        return []

    async def acknowledge(self, condition: ua.NodeId, event_id: Any = None, comment: Any = None) -> Any:
        return await self._act(condition, event_id, comment, "acknowledge")

    async def add_comment(self, condition: ua.NodeId, event_id: Any = None, comment: Any = None) -> Any:
        return await self._act(condition, event_id, comment, "comment")

    async def refresh(self, _object: ua.NodeId, subscription_id: Any = None, _item: Any = None) -> Any:
        """ConditionRefresh (and ConditionRefresh2): every retained condition again, to that subscription,
        between a RefreshStart and a RefreshEnd event. asyncua has its own, off unless bound before
        init through its internal server; this one is linked through the public link_method."""
        sid = subscription_id.Value if isinstance(subscription_id, ua.Variant) else subscription_id
        if not isinstance(sid, int) or isinstance(sid, bool):
            return status(ua.StatusCodes.BadSubscriptionIdInvalid)
        await self.refresh_start.trigger(subscription_id=sid)
        for alert_id, alert in list(self.latest.items()):
            if alert_id in self.conditions:
                await self._emit(alert, self.conditions[alert_id], subscription_id=sid)
        await self.refresh_end.trigger(subscription_id=sid)
        return []

    def stats(self) -> dict[str, int]:
        return {"conditions": len(self.conditions), "condition_nodes": self.made, "events": self.events, "acknowledged": self.acknowledged,
                "commented": self.commented, "methods_refused": self.refused}

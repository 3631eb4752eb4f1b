"""The alert types the gateway knows, one entry each: what a new kind of alert needs is a line here and
its words in `gateway.core.texts` (`alert.<TYPE>.title` and one `alert.<TYPE>.<variant>` per message).

The service, the causes and the line-side protocol read this table instead of naming types: the
default priority and the `alert_priority` key that overrides it per characteristic, whether an
operator may create the type, whether repeats are counted on the unresolved alert.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.core.texts import LANGUAGES, text


@dataclass(frozen=True)
class AlertType:
    """One kind of alert: its protocol name, its priority rule and where its words are."""

    name: str  # the protocol's `alert_type`
    default_priority: int  # 1 (info) .. 5 (urgent)
    # the field of a characteristic's `alert_priority` (config) that overrides the default; None: fixed
    priority_key: str | None = None
    operator_may_create: bool = False  # create_alert / POST may use it; else only the gateway raises it
    # repeats while unresolved count `occurrences` on one alert (per product, characteristic, rule)
    counts_repeats: bool = True

    @property
    def title_key(self) -> str:
        """The text key of its title (gateway.core.texts)."""
        return f"alert.{self.name}.title"

    def message_key(self, variant: str) -> str:
        """The text key of one of its messages: `alert.<TYPE>.<variant>`."""
        return f"alert.{self.name}.{variant}"

    def priority(self, characteristic: Any = None) -> int:
        """The priority for `characteristic`: its `alert_priority` override, else the default."""
        if self.priority_key is None or characteristic is None:
            return self.default_priority
        overrides = getattr(characteristic, "alert_priority", None)
        value = getattr(overrides, self.priority_key, None)
        return self.default_priority if value is None else int(value)

    def fields(self, characteristic: Any, language: str, variant: str = "message", /,
               **values: Any) -> dict[str, Any]:
        """`alert_type`, `priority` and `words` for `AlertService.raise_alert`; `values` fill the title and
        the message (a callable value is called with the language; `characteristic` may be one of them,
        the first three are positional only). The words are formatted only when
        `words()` is called: for a new alert, never for a repeat."""
        words: Callable[[], dict[str, Any]] = functools.partial(
            worded, language, self.title_key, self.message_key(variant), **values)
        return {"alert_type": self.name, "priority": self.priority(characteristic), "words": words}


def worded(language: str, title_key: str, message_key: str, /, **values: Any) -> dict[str, Any]:
    """`title` and `message` in `language`, and `texts` in every language. A callable value is called
    with the language (a rule's description is worded per language too)."""
    texts: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        filled = {k: v(lang) if callable(v) else v for k, v in values.items()}
        texts[lang] = {"title": text(lang, title_key, **filled), "message": text(lang, message_key, **filled)}
    own = texts.get(language, texts["en"])
    return {"title": own["title"], "message": own["message"], "texts": texts}


# Every type, in the order the protocol lists them (the `allowed` of an error names them so). The
# defaults of the configurable ones are those of config.AlertPriority, which documents the keys
# (tests/test_alert_types.py holds the two equal).
ALERT_TYPES: dict[str, AlertType] = {t.name: t for t in (
    AlertType("OUT_OF_SPEC", 4, "out_of_spec", operator_may_create=True),
    AlertType("OUT_OF_CONTROL", 3, "out_of_control", operator_may_create=True),
    AlertType("RUN_RULE_VIOLATION", 2, "run_rule", operator_may_create=True),
    AlertType("CAPABILITY_LOW", 2, "capability", operator_may_create=True),
    AlertType("SOURCE_STALE", 3, "source_stale"),
    AlertType("STORAGE", 4),  # losing data threatens every characteristic at once
    AlertType("OUTPUT_FAILED", 4),  # an andon or interlock the line relies on is not being written
    # typed in by a person: no words of ours, and two of them are two alerts
    AlertType("MANUAL", 3, operator_may_create=True, counts_repeats=False),
)}


def alert_type(name: str) -> AlertType | None:
    """The table's entry for `name` (None for a type this gateway does not know)."""
    return ALERT_TYPES.get(name)


def operator_alert_types() -> tuple[str, ...]:
    """The types a person or another system may create, in table order."""
    return tuple(t.name for t in ALERT_TYPES.values() if t.operator_may_create)

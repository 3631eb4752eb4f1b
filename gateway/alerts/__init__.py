"""Alerts: the service that raises, escalates and resolves them (service.py) and their causes (causes.py).

`from gateway.alerts import AlertService, ACTING_CLIENT` works for every caller outside
the package; its acts refuse with `gateway.core.texts.Refusal`.
"""

from gateway.alerts.service import ACTING_CLIENT, MAX_SHELVE_S, UNRESOLVED, AlertService

__all__ = ["ACTING_CLIENT", "MAX_SHELVE_S", "UNRESOLVED", "AlertService"]

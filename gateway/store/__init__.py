"""The gateway's SQLite file: Store (store.py), its batches, writer thread, reads, schema and maintenance.

`from gateway.store import Store, StoreError` works for every caller outside the package; inside it,
modules import from their neighbours directly (schema <- batch <- writer <- store).
"""

from gateway.store.batch import Batch
from gateway.store.reads import OutboxRow
from gateway.store.schema import LATEST, StoreError, StoreLockedError, StoreUnavailable
from gateway.store.store import Store

__all__ = ["Store", "Batch", "StoreError", "StoreLockedError", "StoreUnavailable", "OutboxRow", "LATEST"]

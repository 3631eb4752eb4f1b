"""The one place the OPC UA server leans on asyncua's internals; asyncua is pinned to the tested minor.

asyncua's server deep-copies a DataValue for every monitored item that watches the node, on every
change (`MonitoredItemValues.set_current_datavalue`, "to prevent referencing the inner value"). A
DataValue with tz-aware times takes about 34 us to deep-copy; at 1,000 readings/s with 10 clients
watching the Value, a profile of the daemon showed these copies as 53 % of its CPU (3.6 s of 6.8 s).
The gateway never changes a DataValue once it has written it (each change is a new one), so its values
copy as themselves: `SharedDataValue` is asyncua's DataValue with a `__deepcopy__` that returns it.
It encodes byte for byte as a DataValue, and asyncua's change detection compares its fields, not its
class. tests/test_library_internals.py checks the version, that asyncua still deep-copies there, and
the encoding; a new asyncua is a deliberate step (run that test and the OPC UA server tests, then move
the pin and TESTED_VERSION together).
"""

from __future__ import annotations

from typing import Any

from asyncua import ua

TESTED_VERSION = "2.1.0"  # the asyncua this module was read from and tested with


class SharedDataValue(ua.DataValue):
    """A DataValue nobody changes after it is written: a deep copy of it is itself."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedDataValue:
        return self

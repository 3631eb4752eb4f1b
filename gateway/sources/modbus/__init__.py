"""The modbus gauge source."""

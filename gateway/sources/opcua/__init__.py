"""The opcua gauge source."""

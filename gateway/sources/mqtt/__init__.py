"""The mqtt gauge source."""

"""The line-side service: WebSocket endpoints, read-only HTTP, the HMI page."""

"""End-to-end tests: HTTP and WebSocket against the platform started by `attune up`."""

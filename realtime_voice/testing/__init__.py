"""Protocol-faithful simulators and helpers for tests, load tests and trying the server."""

"""The two planes of one server process: HTTP control plane and WebSocket media plane."""

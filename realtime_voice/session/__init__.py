"""Per-call sessions, their states, the outbound pacer and the process-wide session manager."""

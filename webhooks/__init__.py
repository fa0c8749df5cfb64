"""The HTTP control plane: inbound-call answers, stream tokens, health and metrics."""

"""Call legs: one call's connection to a carrier (WebSocket gateway today; SIP/RTP next)."""

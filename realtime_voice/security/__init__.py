"""Security code both planes share: stream tokens, Twilio signatures, shared-secret
checks and per-address rate limits.

It sits below the media plane (`realtime_voice.server`) and the HTTP control plane
(`webhooks`) so that neither has to import the other to authenticate a call, and it
imports neither of them, nor the call sessions.
"""

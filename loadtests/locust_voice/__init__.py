"""Locust scenarios for realtime-voice: callers on both media protocols, webhooks, ops.

One module per concern:

- `fixtures`: the prerecorded caller utterances (8 kHz mu-law files in ``loadtests/audio``);
- `scripts`: what a caller says and when (wait for the bot, or talk over it);
- `media_socket`: one gateway WebSocket under gevent (blocking ``websocket-client``, one
  reader greenlet);
- `call`: one connected call: 20 ms pacing, the gateway's playback buffer, the script, and
  the per-turn measurements;
- `stats`: how measurements become locust request statistics;
- `callers`: the shared caller user, then `ringcentral_caller` and `twilio_caller`;
- `webhook_user` and `ops_user`: the control-plane users;
- `options`: the extra ``locust`` command-line options these users read.

``loadtests/locustfile.py`` puts them together; ``loadtests/run_load.py`` runs it against a
local stack in one command (see docs/LOAD_TESTING.md).
"""

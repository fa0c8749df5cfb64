"""RTP media for SIP call legs: packets, SRTP, RFC 4733 DTMF, jitter buffer, codecs.

Pure functions and small state machines over bytes and PCM; sockets live in the leg that
uses them. Imports nothing of ours but ``realtime_voice.audio``.
"""

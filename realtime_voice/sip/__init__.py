"""SIP signalling for the RingCentral softphone leg (docs/RINGCENTRAL_SIP.md).

Sans-I/O pieces (messages, digest authentication, SDP) sit beside the asyncio front ends
that use them; nothing here knows the call session. See docs/ARCHITECTURE.md.
"""

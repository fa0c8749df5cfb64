"""A fake RingCentral SIP edge for tests: TLS registrar, call pusher, B2BUA with media relay.

It behaves like the RingCentral that docs/RINGCENTRAL_SIP.md §3 describes, so the SIP
leg can be tested without RingCentral:

- `FakeRingCentralEdge` listens on 127.0.0.1 (TLS with `LoopbackCertificates`, or TCP)
  and answers REGISTER with a digest challenge, then 200 (`EdgeKnobs`: MD5 without qop as
  RingCentral's SDK answers it, qop=auth, SHA-256, a stale nonce once, 403, short
  expiries, a dropped connection after the 200); every attempt is a `Registration`,
  the latest per user a `Binding`;
- `FakeRingCentralEdge.invite` pushes a call over the device's own connection
  (auto-answer headers, or a delayed offer) and returns an `EdgeCall` to drive:
  ACK, CANCEL, re-INVITE, UPDATE, BYE, other requests; waiting for the device's BYE or
  REFER (answered 202 + NOTIFY ``SIP/2.0 200 OK`` sipfrag);
- an INVITE from another UA (baresip) for a registered user is bridged (`Bridge`), with
  the SDP pointed at a `MediaRelay` that forwards UDP both ways and counts it.
"""

from __future__ import annotations

from realtime_voice.testing.sip_edge.b2bua import Bridge
from realtime_voice.testing.sip_edge.callee import Callee, CalleeScript
from realtime_voice.testing.sip_edge.calls import SIPFRAG_OK, EdgeCall
from realtime_voice.testing.sip_edge.edge import FakeRingCentralEdge
from realtime_voice.testing.sip_edge.flows import FlowClosed, SipFlow, TransactionTimeout
from realtime_voice.testing.sip_edge.registrar import Binding, EdgeKnobs, Registration
from realtime_voice.testing.sip_edge.relay import MediaRelay, MediaTarget, RelayCounters

__all__ = [
    "SIPFRAG_OK",
    "Binding",
    "Bridge",
    "Callee",
    "CalleeScript",
    "EdgeCall",
    "EdgeKnobs",
    "FakeRingCentralEdge",
    "FlowClosed",
    "MediaRelay",
    "MediaTarget",
    "Registration",
    "RelayCounters",
    "SipFlow",
    "TransactionTimeout",
]

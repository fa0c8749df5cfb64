"""A local RingCentral REST simulator: OAuth, Call Control and webhook subscriptions.

It stands in for ``platform.ringcentral.com`` so the real client code
(`realtime_voice.ringcentral`) can be tested and load-tested without an account:

- ``POST /restapi/oauth/token``: the JWT-bearer grant, checking HTTP Basic client
  credentials and the assertion; access tokens expire after ``token_ttl_s``
  (`oauth`).
- Call Control under ``/restapi/v1.0/account/~/telephony/sessions/{id}``: ``GET``,
  ``DELETE``, ``parties/{id}`` ``DELETE``, ``parties/{id}/transfer`` and ``/forward``,
  with docs/RINGCENTRAL.md §3's bodies (exactly one target) and party states (forward only
  while ringing, transfer only once answered). A state change is announced to every
  subscribed webhook, as RingCentral does (`call_control`).
- ``/restapi/v1.0/subscription``: create (performing the Validation-Token handshake
  against the address first, failing with ``SUB-525`` as RingCentral does), list, get,
  delete (`subscriptions`).
- Every request is logged (`RingCentralSimulator.requests`) for assertions, and fault
  knobs make the token endpoint or the API fail a given number of times (`simulator`).

Error bodies use RingCentral's shape (``errorCode``, ``message``, ``errors``;
`records`). Where the real error code for a condition is not documented in our
references, the simulator uses its own ``SIM-...`` code rather than invent a
RingCentral one.

``realtime-voice simulate ringcentral`` runs it on its own (see `add_arguments`, in
`cli`).
"""

from __future__ import annotations

from realtime_voice.testing.ringcentral_sim.cli import add_arguments, run
from realtime_voice.testing.ringcentral_sim.oauth import JWT_BEARER_GRANT
from realtime_voice.testing.ringcentral_sim.records import RecordedRequest, SimParty
from realtime_voice.testing.ringcentral_sim.simulator import RingCentralSimulator

__all__ = [
    "JWT_BEARER_GRANT",
    "RecordedRequest",
    "RingCentralSimulator",
    "SimParty",
    "add_arguments",
    "run",
]

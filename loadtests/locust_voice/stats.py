"""How a call's measurements become locust request statistics.

Locust aggregates "requests" by type and name, with response times, percentiles and
failures, into its CSV and HTML reports. A voice call is not a request, so each thing a
load tester measures is reported as one (times in milliseconds), named per protocol so
RingCentral and Twilio calls get their own rows:

=========  ===========================================  =====================================
type       name                                         one sample is
=========  ===========================================  =====================================
turn       ``end_of_speech_to_first_audio (PROTOCOL)``  end of the caller's speech (last
                                                        speech frame sent) → first frame of
                                                        the bot's reply received
barge_in   ``speech_to_clear (PROTOCOL)``               the caller starts talking over the
                                                        bot → ``clear`` received
call       ``greeting_first_audio (PROTOCOL)``          media start sent → first greeting
                                                        frame received
call       ``whole_call (PROTOCOL)``                    one whole call, webhook to close; a
                                                        failure names the call's first problem
ws         ``connect (PROTOCOL)``                       the media WebSocket handshake
=========  ===========================================  =====================================

A sample that failed (no answer by the deadline, an error frame, an unexpected close)
is a locust failure whose message says why; its time is the time waited, so timeouts
weigh on the percentiles as the slow answers they are.
"""

from __future__ import annotations

from typing import Literal

from locust.event import Events

__all__ = [
    "BARGE_IN",
    "CONNECT",
    "GREETING",
    "TURN",
    "WHOLE_CALL",
    "CallFailure",
    "CallStats",
    "Protocol",
]

Protocol = Literal["ringcentral", "twilio", "exotel", "telnyx", "plivo", "vonage"]

TURN = ("turn", "end_of_speech_to_first_audio")
BARGE_IN = ("barge_in", "speech_to_clear")
GREETING = ("call", "greeting_first_audio")
WHOLE_CALL = ("call", "whole_call")
CONNECT = ("ws", "connect")


class CallFailure(Exception):
    """Why a measurement or a call failed, in words that group well in locust's report.

    Messages carry no ids or times, so equal problems count as one failure row.
    """


class CallStats:
    """Reports one protocol's measurements to locust.

    Args:
        events: the locust environment's events.
        protocol: which media protocol the calls use (part of each row's name).
    """

    def __init__(self, events: Events, protocol: Protocol) -> None:
        """Bind to the environment's request event."""
        self._events = events
        self.protocol = protocol

    def name(self, measure: tuple[str, str]) -> str:
        """The locust row name of ``measure`` for this protocol."""
        return f"{measure[1]} ({self.protocol})"

    def report(
        self, measure: tuple[str, str], elapsed_s: float, failure: str | None = None
    ) -> None:
        """Report one sample.

        Args:
            measure: one of `TURN`, `BARGE_IN`, `GREETING`, `WHOLE_CALL`, `CONNECT`.
            elapsed_s: the measured time, or the time waited when it failed.
            failure: why it failed; None for a success.
        """
        self._events.request.fire(  # type: ignore[no-untyped-call]
            request_type=measure[0],
            name=self.name(measure),
            response_time=elapsed_s * 1000.0,
            response_length=0,
            exception=CallFailure(failure) if failure is not None else None,
            context={"protocol": self.protocol},
        )

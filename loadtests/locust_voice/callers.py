"""The caller user shared by both media protocols: one user is one phone line.

Each task is one whole call: the protocol's answer webhook (a subclass's `answer`),
then the media WebSocket, the script, the hang-up (`MediaCall`). Between calls the line
rests one to three seconds, so ``--users N`` holds close to N calls at once.

When the load test stops, a caller in the middle of a call hangs up cleanly at its next
step and reports nothing more (run with ``--stop-timeout`` of a few seconds so it can).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from locust_voice.call import CallLimits, MediaCall
from locust_voice.options import read_options
from locust_voice.scripts import SCRIPTS
from locust_voice.stats import WHOLE_CALL, CallStats, Protocol
from realtime_voice.testing.gateway_wire import GatewayWire

__all__ = ["Answer", "AnswerFailedError", "CallerUser", "is_stopping"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_STOPPING_STATES = frozenset({STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED})
_stalls = 0
_max_lag_s = 0.0
_skipped_barge_ins = 0


@dataclass(frozen=True)
class Answer:
    """What the answer webhook told the gateway: where to stream and how.

    Attributes:
        media_url: the media WebSocket URL.
        wire: the gateway side of the media protocol for this call.
        custom_parameters: for the ``start`` message.
    """

    media_url: str
    wire: GatewayWire
    custom_parameters: dict[str, str]


class AnswerFailedError(Exception):
    """The answer webhook failed; the message says how (already reported to locust)."""


def is_stopping(environment: Environment) -> bool:
    """Whether the load test is stopping (callers then hang up and report no more)."""
    runner = environment.runner
    return runner is not None and runner.state in _STOPPING_STATES


class CallerUser(FastHttpUser):
    """A telephony gateway line placing one scripted call after another.

    Subclasses set `protocol` and implement `answer`.
    """

    abstract = True
    protocol: ClassVar[Protocol]
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        """Read this run's options once."""
        self.options = read_options(self.environment)
        self.stats = CallStats(self.environment.events, self.protocol)
        self.limits = CallLimits(
            greeting_s=self.options.greeting_timeout,
            turn_s=self.options.turn_timeout,
            barge_in_s=self.options.barge_in_timeout,
        )

    def answer(self, call_id: str) -> Answer:
        """Call the protocol's answer webhook for ``call_id``.

        Raises:
            AnswerFailedError: no usable answer (the webhook request is reported failed).
        """
        raise NotImplementedError

    def post_answer(
        self, path: str, parse: Callable[[Any], _T], *, method: str = "POST", **request: Any
    ) -> _T:
        """Call an answer webhook, reported as ``PATH (caller)``, and parse its answer.

        Args:
            path: the webhook's path.
            parse: turns the 200 response into what the call needs; a `ValueError` names
                what is wrong with it.
            method: ``POST`` (most carriers) or ``GET`` (Exotel's applet URL, Vonage).
            **request: the request's body, query and headers (``json=``, ``data=``,
                ``params=``, ``headers=``).

        Raises:
            AnswerFailedError: not a 200, or ``parse`` refused the answer (the request is
                reported failed with the same reason).
        """
        with self.client.request(
            method, path, name=f"{path} (caller)", catch_response=True, **request
        ) as response:
            try:
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                result = parse(response)
            except ValueError as exc:  # also a body that is not JSON
                response.failure(str(exc))
                raise AnswerFailedError(str(exc)) from exc
            response.success()
        return result

    def new_call_id(self) -> str:
        """A fresh call id in the protocol's style."""
        return f"lt-{secrets.token_hex(8)}"

    def custom_parameters(self) -> dict[str, str]:
        """The ``start`` message's custom parameters from the options."""
        return {"flow": self.options.flow} if self.options.flow else {}

    @task
    def call(self) -> None:
        """Place one whole call and report it."""
        global _stalls, _max_lag_s, _skipped_barge_ins
        started = time.perf_counter()
        try:
            answer = self.answer(self.new_call_id())
        except AnswerFailedError as exc:
            self.stats.report(WHOLE_CALL, time.perf_counter() - started, f"webhook: {exc}")
            return
        call = MediaCall(
            answer.media_url,
            answer.wire,
            answer.custom_parameters,
            SCRIPTS[self.options.call_script],
            self.stats,
            self.limits,
            lambda: is_stopping(self.environment),
        )
        call.run(started)
        _stalls += call.stalls
        _max_lag_s = max(_max_lag_s, call.max_lag_s)
        _skipped_barge_ins += call.skipped_barge_ins


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _warn_late_pacing(environment: Environment, **_: object) -> None:
    if _skipped_barge_ins:
        log.info(
            "%d barge-ins not attempted: the bot's reply had ended before the barge-in point",
            _skipped_barge_ins,
        )
    # Latency figures from an overloaded load generator measure the generator.
    if _stalls:
        log.warning(
            "the callers' audio pacing fell more than 100 ms behind real time %d times "
            "(worst %.0f ms): the load generator stalled, and latencies measured across a "
            "stall are overstated",
            _stalls,
            _max_lag_s * 1000,
        )

"""A simulated telephony gateway that places one call to the server and reports it.

`SimulatedCaller` does what a carrier plus media gateway would: it answers the call
through the inbound webhook (docs/PROTOCOLS.md §1), opens the media WebSocket (the
RingCentral bridge protocol, §2, or Twilio Media Streams, §3), streams the caller's
audio at real time in 20 ms frames (silence when the caller is quiet: a phone line
never goes silent on the wire), plays the bot's audio through a `GatewayPlayback`
(echoing marks when playback reaches them, dropping audio on ``clear``) and follows a
script of `CallerLine` values: speak after the bot finished, barge in while it speaks,
or press a key. The result is a `CallReport`: a timed two-sided transcript, latencies,
marks, transfer/hang-up, errors and the close code; optionally a stereo WAV.

Tests, the locust scenarios and ``realtime-voice call`` all use it::

    report = await SimulatedCaller(CallOptions(http_url="http://127.0.0.1:8000")).run(
        [CallerLine("what time do you open"), CallerLine("thanks, bye")]
    )
    print(report.format_transcript())
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from realtime_voice.security.operator_token import find_operator_token
from realtime_voice.testing.call_report import (
    BotUtterance,
    CallerLineReport,
    CallReport,
    EndReason,
    TimelineEvent,
)
from realtime_voice.testing.call_session import CallSession, LineAudio
from realtime_voice.testing.carrier_answers import (
    AnswerError,
    CarrierCall,
    StreamAnswer,
    answer_exotel,
    answer_plivo,
    answer_telnyx,
    answer_vonage,
    override_media_url,
)
from realtime_voice.testing.gateway_wire import (
    RingCentralGatewayWire,
    TwilioGatewayWire,
    new_twilio_sid,
)
from realtime_voice.testing.gateway_wire_browser import (
    BrowserGatewayWire,
    BrowserLegError,
    mint_browser_call,
    open_browser_leg,
    origin_of,
)
from realtime_voice.testing.speech import caller_audio, load_recogniser

__all__ = [
    "BotUtterance",
    "CallOptions",
    "CallReport",
    "CallSetupError",
    "CallerLine",
    "CallerLineReport",
    "EndReason",
    "SimulatedCaller",
    "TimelineEvent",
]

_DTMF_DIGITS = frozenset("0123456789*#ABCD")
_TWILIO_WS_PATH = "/api/voice/twilio/ws"
Protocol = Literal["ringcentral", "twilio", "exotel", "telnyx", "plivo", "vonage", "browser"]
PROTOCOLS: tuple[Protocol, ...] = (
    "ringcentral", "twilio", "exotel", "telnyx", "plivo", "vonage", "browser"
)
"""The media protocols the simulated caller speaks."""
# Carriers answered through their own webhook (`carrier_answers`), not /api/voice/inbound.
_AnswerFn = Callable[[aiohttp.ClientSession, CarrierCall], Awaitable[StreamAnswer]]
_CARRIER_ANSWERS: dict[str, _AnswerFn] = {
    "exotel": answer_exotel,
    "telnyx": answer_telnyx,
    "plivo": answer_plivo,
    "vonage": answer_vonage,
}


class CallSetupError(Exception):
    """The call never got going: the webhook or the media connection failed.

    The message names the problem in words a developer can act on.
    """


@dataclass
class CallerLine:
    """One thing the caller does, in order.

    Exactly one of speech (``text`` and/or ``audio``) or ``dtmf`` is given.

    Attributes:
        text: what the caller says; synthesized with the offline TTS unless ``audio``
            is given (then ``text`` only labels it in the transcript).
        audio: what the caller says, as 8 kHz mu-law.
        pause_before_s: silence after the bot finished playing its previous utterance
            (or the greeting) before the caller starts.
        barge_in_after_s: instead of waiting for the bot to finish, start this many
            seconds after the bot's reply starts playing (tests barge-in).
        dtmf: press this key (0-9, *, #, A-D) instead of speaking.
    """

    text: str | None = None
    audio: bytes | None = None
    pause_before_s: float = 0.8
    barge_in_after_s: float | None = None
    dtmf: str | None = None

    def __post_init__(self) -> None:
        speech = self.text is not None or self.audio is not None
        if speech == (self.dtmf is not None):
            raise ValueError("a CallerLine needs exactly one of speech (text/audio) or dtmf")
        if self.dtmf is not None and self.dtmf not in _DTMF_DIGITS:
            raise ValueError(f"dtmf must be one of 0-9, *, #, A-D, got {self.dtmf!r}")
        if self.audio is None and self.text is not None and not self.text.strip():
            raise ValueError("a CallerLine's text is empty")
        if self.pause_before_s < 0 or (self.barge_in_after_s or 0) < 0:
            raise ValueError("pause_before_s and barge_in_after_s must not be negative")

    @property
    def label(self) -> str:
        """How the line appears in the transcript."""
        if self.dtmf is not None:
            return self.dtmf
        if self.text is not None:
            return self.text
        assert self.audio is not None
        return f"<audio {len(self.audio) / 8000:.1f} s>"


def _default_call_id(protocol: str) -> str:
    """A call id shaped as the carrier shapes its own."""
    if protocol == "twilio":
        return new_twilio_sid("CA")
    if protocol == "exotel":
        return secrets.token_hex(16)
    if protocol == "telnyx":
        return "v3:" + secrets.token_urlsafe(24)
    if protocol in ("plivo", "vonage"):
        return str(uuid.uuid4())
    return f"call-{secrets.token_hex(8)}"


@dataclass
class CallOptions:
    """How to place the call.

    Attributes:
        http_url: the server's HTTP control plane.
        protocol: ``ringcentral`` (bridge protocol), ``twilio`` (Media Streams) or a
            carrier answered through its own webhook: ``exotel`` (Voicebot applet),
            ``telnyx`` (TeXML), ``plivo`` (answer XML) or ``vonage`` (NCCO).
        media_url: override the media WebSocket URL. For Twilio, the default is
            ``ws://<host of the answer's media url>/api/voice/twilio/ws``; for the
            bridge, the answer's URL (an override keeps the answer's query string).
        call_id: the call id (``call-<hex>``; for Twilio a ``CA<hex>`` CallSid).
        from_number: the caller's number.
        to_number: the dialled number.
        custom_parameters: sent in ``start`` (persona, greeting_text, flow...).
        verification_token: sent as the webhook's ``Verification-Token`` header.
        record_path: write a stereo WAV here (left: caller, right: bot as played).
        transcribe_bot: transcribe the bot's utterances (offline recogniser).
        transcribe_during_call: transcribe each utterance as it finishes (for live
            display) instead of after the call (which leaves the CPU to the server).
        max_call_s: hang up (``stop``) after this long, whatever is happening.
        end_after_last_line_s: after the last line, once the bot replied and finished
            playing, hang up when it has been silent this long.
        reply_timeout_s: give up waiting for the bot to start a reply (or the greeting)
            after this long and carry on with the script.
        utterance_gap_s: silence that splits bot audio into two utterances when no
            mark or clear does.
        connect_timeout_s: limit for the webhook request and the WebSocket handshake.
        on_event: called with each timeline event as it happens (live display).
        sample_rate: the stream's rate where the carrier lets the answer choose (Exotel).
        basic_auth: ``(user, password)`` the carrier presents (Exotel's applet URL).
        exotel_seed_000: open the Exotel stream as seed 000's client did (lead context
            as JSON in ``customField`` on ``connected``).
        signing_key: sign the carrier's answer request with this secret where the server
            checks it (Plivo: ``PLIVO_AUTH_TOKEN``).
        api_token: the operator's bearer token, for ``browser`` (the console's softphone:
            ``POST /api/browser/calls`` mints the call; its id replaces ``call_id``);
            ``None``: ``VOICE_API_TOKEN``, else ``<VOICE_DATA_DIR>/api-token``.
    """

    http_url: str = "http://127.0.0.1:8000"
    protocol: Protocol = "ringcentral"
    media_url: str | None = None
    call_id: str = ""
    from_number: str = "+15555551234"
    to_number: str = "+15555555678"
    custom_parameters: dict[str, str] = field(default_factory=dict)
    verification_token: str | None = None
    record_path: str | None = None
    transcribe_bot: bool = True
    transcribe_during_call: bool = False
    max_call_s: float = 120.0
    end_after_last_line_s: float = 3.0
    reply_timeout_s: float = 15.0
    utterance_gap_s: float = 0.6
    connect_timeout_s: float = 10.0
    on_event: Callable[[TimelineEvent], None] | None = None
    sample_rate: int = 8000
    basic_auth: tuple[str, str] | None = None
    exotel_seed_000: bool = False
    signing_key: str | None = None
    api_token: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}"
            )
        if not self.call_id:
            self.call_id = _default_call_id(self.protocol)




def _describe_os_error(exc: BaseException | None) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) if exc else "unknown error"


class SimulatedCaller:
    """Places one call as a telephony gateway would, following a script.

    Args:
        options: where and how to call.
    """

    def __init__(self, options: CallOptions | None = None) -> None:
        """Prepare a caller; nothing is contacted until `run`."""
        self.options = options or CallOptions()

    async def run(self, lines: Sequence[CallerLine] | AsyncIterable[CallerLine]) -> CallReport:
        """Place the call, follow the script, hang up, and report.

        The call always ends cleanly: on the server's close (any code), after the
        bot's hang-up or transfer once its audio has played, after the last line (see
        `CallOptions.end_after_last_line_s`), or at ``max_call_s``. No task outlives
        this method.

        Args:
            lines: the script. A sequence is synthesized up front (so synthesis never
                competes with the call for CPU); an async iterable (typed lines) is
                synthesized line by line as it yields.

        Returns:
            What happened.

        Raises:
            CallSetupError: the webhook failed or the media connection could not open.
            TtsError: a caller line could not be synthesized.
        """
        if isinstance(lines, Sequence):
            script: Sequence[LineAudio] | AsyncIterable[LineAudio] = [
                await _with_audio(line) for line in lines
            ]
        else:
            script = _synthesize_stream(lines)
        answer = await self._answer()
        options = self.options  # after the answer: a browser mint names the call
        notes: list[str] = []
        if options.transcribe_bot and options.transcribe_during_call:
            # Loading the model mid-call would steal CPU from the call being measured
            # (the stream token outlives this second or two).
            try:
                await load_recogniser()
            except Exception as exc:  # the call goes on without the bot's text
                notes.append(f"bot speech not transcribed: {exc}")
                options = dataclasses.replace(options, transcribe_bot=False)
        report = CallReport(call_id=options.call_id, protocol=options.protocol)
        report.notes.extend(notes)
        report.media_url = answer.media_url
        ws = await self._connect(answer.media_url, answer.headers)
        if isinstance(answer.wire, BrowserGatewayWire):
            await self._open_browser_leg(ws, answer.wire)
        session = CallSession(options, ws, answer.wire, report)
        try:
            async with ws:
                await session.run(answer.custom_parameters, script)
            await session.finish()
        finally:
            await session.discard()
        return report

    async def _answer(self) -> StreamAnswer:
        options = self.options
        base = options.http_url.rstrip("/")
        if options.protocol == "browser":
            return await self._answer_browser()
        carrier_answer = _CARRIER_ANSWERS.get(options.protocol)
        if carrier_answer is not None:
            return await self._answer_by_carrier(carrier_answer)
        url = f"{base}/api/voice/inbound"
        body = {
            "event": "call.inbound",
            "body": {
                "id": options.call_id,
                "from": {"phoneNumber": options.from_number},
                "to": {"phoneNumber": options.to_number},
            },
        }
        headers = {}
        if options.verification_token is not None:
            headers["Verification-Token"] = options.verification_token
        timeout = aiohttp.ClientTimeout(total=options.connect_timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(url, json=body, headers=headers) as response,
            ):
                text = await response.text()
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            raise CallSetupError(
                f"cannot reach {base}: {_describe_os_error(exc.os_error)}"
                " — is `realtime-voice serve` running?"
            ) from exc
        except TimeoutError as exc:
            raise CallSetupError(
                f"webhook POST {url} got no answer within {options.connect_timeout_s:g} s"
            ) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise CallSetupError(f"webhook POST {url} failed: {exc}") from exc
        if status != 200:
            raise CallSetupError(f"webhook POST {url} answered HTTP {status}: {text[:300]}")
        return self._read_answer(url, text)

    async def _answer_by_carrier(self, carrier_answer: _AnswerFn) -> StreamAnswer:
        options = self.options
        call = CarrierCall(
            http_url=options.http_url,
            call_id=options.call_id,
            from_number=options.from_number,
            to_number=options.to_number,
            custom_parameters=options.custom_parameters,
            sample_rate=options.sample_rate,
            basic_auth=options.basic_auth,
            seed_000=options.exotel_seed_000,
            signing_key=options.signing_key,
        )
        timeout = aiohttp.ClientTimeout(total=options.connect_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                answer = await carrier_answer(http, call)
        except aiohttp.ClientConnectorError as exc:
            raise CallSetupError(
                f"cannot reach {options.http_url}: {_describe_os_error(exc.os_error)}"
                " — is `realtime-voice serve` running?"
            ) from exc
        except TimeoutError as exc:
            raise CallSetupError(
                f"the {options.protocol} answer webhook gave no answer within "
                f"{options.connect_timeout_s:g} s"
            ) from exc
        except (AnswerError, aiohttp.ClientError, ValueError) as exc:
            raise CallSetupError(f"the {options.protocol} answer failed: {exc}") from exc
        return dataclasses.replace(
            answer, media_url=override_media_url(answer.media_url, options.media_url)
        )

    async def _answer_browser(self) -> StreamAnswer:
        """Mint the call as the console page does; the socket then presents its Origin."""
        options = self.options
        # As `realtime-voice dial` does: the variable, else the server's token file.
        token = options.api_token or find_operator_token(os.environ)
        timeout = aiohttp.ClientTimeout(total=options.connect_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                call = await mint_browser_call(
                    http, options.http_url, token, options.custom_parameters
                )
        except aiohttp.ClientConnectorError as exc:
            raise CallSetupError(
                f"cannot reach {options.http_url}: {_describe_os_error(exc.os_error)}"
                " — is `realtime-voice serve` running?"
            ) from exc
        except TimeoutError as exc:
            raise CallSetupError(
                f"the browser call was not minted within {options.connect_timeout_s:g} s"
            ) from exc
        except (BrowserLegError, aiohttp.ClientError) as exc:
            hint = "" if token else (
                " (no operator token: set VOICE_API_TOKEN, or run where the server's "
                "data directory is, VOICE_DATA_DIR)")
            raise CallSetupError(f"the browser call failed: {exc}{hint}") from exc
        self.options = dataclasses.replace(options, call_id=call.call_id)
        return StreamAnswer(
            override_media_url(call.url, options.media_url), {},
            BrowserGatewayWire(call.call_id), {"Origin": origin_of(options.http_url)},
        )

    async def _open_browser_leg(self, ws: ClientConnection, wire: BrowserGatewayWire) -> None:
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                await open_browser_leg(ws, wire)
        except (BrowserLegError, ConnectionClosed, TimeoutError) as exc:
            await ws.close()
            raise CallSetupError(f"the browser leg did not start: {exc}") from exc

    def _read_answer(self, url: str, text: str) -> StreamAnswer:
        options = self.options
        try:
            answer: Any = json.loads(text)
            media = answer["media"]
            media_url = media["url"]
            fmt = media.get("format", {})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallSetupError(
                f"webhook POST {url} answered something that is not a media answer: {text[:300]}"
            ) from exc
        if answer.get("action") != "answer" or not isinstance(media_url, str):
            raise CallSetupError(f"webhook POST {url} did not answer the call: {text[:300]}")
        if (fmt.get("encoding", "mulaw"), fmt.get("sampleRate", 8000)) != ("mulaw", 8000):
            raise CallSetupError(f"the simulated gateway speaks only mu-law 8 kHz, answer: {fmt}")
        params = dict(options.custom_parameters)
        if options.protocol == "twilio":
            token = parse_qs(urlsplit(media_url).query).get("token", [""])[0]
            if not token:
                raise CallSetupError(f"the answer's media url carries no token: {media_url}")
            params["token"] = token
            parts = urlsplit(media_url)
            derived = urlunsplit((parts.scheme, parts.netloc, _TWILIO_WS_PATH, "", ""))
            return StreamAnswer(
                options.media_url or derived, params, TwilioGatewayWire(options.call_id)
            )
        media_url = override_media_url(media_url, options.media_url)
        return StreamAnswer(media_url, params, RingCentralGatewayWire())

    async def _connect(self, url: str, headers: dict[str, str]) -> ClientConnection:
        # Messages never show the query: it carries the stream token.
        shown = url.split("?", 1)[0]
        try:
            # No proxy (the media plane is reached directly, like a gateway does) and no
            # compression (gateways send raw frames; deflate would only cost CPU).
            return await connect(
                url,
                open_timeout=self.options.connect_timeout_s,
                compression=None,
                proxy=None,
                max_size=2**20,
                additional_headers=headers or None,
            )
        except InvalidURI as exc:
            raise CallSetupError(f"bad media url {shown!r}: {exc}") from exc
        except InvalidHandshake as exc:
            raise CallSetupError(f"media WebSocket {shown} refused the connection: {exc}") from exc
        except TimeoutError as exc:
            raise CallSetupError(f"media WebSocket {shown} did not open in time") from exc
        except OSError as exc:
            raise CallSetupError(
                f"cannot reach the media WebSocket {shown}: {_describe_os_error(exc)}"
            ) from exc


async def _with_audio(line: CallerLine) -> LineAudio:
    if line.dtmf is not None or line.audio is not None:
        return LineAudio(line, line.audio or b"")
    assert line.text is not None
    return LineAudio(line, await caller_audio(line.text))


async def _synthesize_stream(lines: AsyncIterable[CallerLine]) -> AsyncIterable[LineAudio]:
    async for line in lines:
        yield await _with_audio(line)

"""The browser leg's codec (docs/PROTOCOLS.md §8), the console-origin rule of its upgrade
and the mint's body checks: literal frames in both directions.
"""

from __future__ import annotations

import json

import pytest

from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaProtocol,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.browser import (
    BROWSER_FORMAT,
    FRAME_BYTES,
    MAX_AUDIO_BYTES,
    BrowserProtocol,
)
from realtime_voice.server.stream_routes import console_origin_refusal
from webhooks.browser_calls import BadBrowserCall, read_browser_call

CALL = "browser-8f14e45f-ceea-4672-9b6e-1d2b4c3a5f60"
START = json.dumps({"event": "start", "call_id": CALL, "sample_rate": 16000})


@pytest.fixture
def proto() -> BrowserProtocol:
    codec = BrowserProtocol(CALL)
    codec.parse(START)
    return codec


def rejected(codec: BrowserProtocol, message: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        codec.parse(message)
    return info.value


def test_satisfies_the_media_protocol_interface() -> None:
    codec: MediaProtocol = BrowserProtocol()
    assert codec.name == "browser"
    assert codec.audio_format == BROWSER_FORMAT
    assert (BROWSER_FORMAT.sample_rate, FRAME_BYTES) == (16000, 640)


# --- start ---------------------------------------------------------------------------


def test_start_names_the_call_and_the_format() -> None:
    codec = BrowserProtocol(CALL)
    assert codec.parse(START) == [StartEvent(call_id=CALL, audio_format=BROWSER_FORMAT)]
    assert codec.started and codec.call_id == CALL
    # sample_rate may be left out: the leg has one format.
    bare = BrowserProtocol(CALL)
    assert bare.parse(json.dumps({"event": "start", "call_id": CALL}))[0] == StartEvent(
        call_id=CALL, audio_format=BROWSER_FORMAT
    )


@pytest.mark.parametrize(
    ("start", "code", "words"),
    [
        ({"event": "start", "call_id": "browser-other"}, "bad_message", "URL"),
        ({"event": "start"}, "bad_message", "call_id"),
        ({"event": "start", "call_id": ""}, "bad_message", "call_id"),
        ({"event": "start", "call_id": 7}, "bad_message", "call_id"),
        ({"event": "start", "call_id": "x" * 129}, "bad_message", "128"),
        ({"event": "start", "call_id": CALL, "sample_rate": 48000}, "unsupported_format", "16k"),
        ({"event": "start", "call_id": CALL, "sample_rate": "16000"}, "unsupported_format", "16k"),
    ],
)
def test_a_bad_start_is_refused_and_the_codec_stays_unstarted(
    start: dict[str, object], code: str, words: str
) -> None:
    codec = BrowserProtocol(CALL)
    error = rejected(codec, json.dumps(start))
    assert error.code == code and words.replace("16k", "16000") in error.message
    assert not codec.started
    assert codec.parse(START)  # a good start still works


def test_without_a_url_call_id_any_start_call_is_taken() -> None:
    assert BrowserProtocol().parse(json.dumps({"event": "start", "call_id": "c1"}))[0] == (
        StartEvent(call_id="c1", audio_format=BROWSER_FORMAT)
    )


def test_duplicate_start_and_anything_before_start_are_refused(proto: BrowserProtocol) -> None:
    assert "duplicate" in rejected(proto, START).message
    fresh = BrowserProtocol(CALL)
    for message in (b"\x00\x00" * 320, '{"event":"mark","name":"m"}', '{"event":"hangup"}'):
        assert "before start" in rejected(fresh, message).message


# --- audio ---------------------------------------------------------------------------


def test_audio_is_reframed_into_whole_20_ms_frames(proto: BrowserProtocol) -> None:
    # A worklet's 128-sample quantum is 256 bytes: frames complete across messages.
    quantum = bytes(range(256))
    assert proto.parse(quantum) == []
    assert proto.parse(quantum) == []
    (event,) = proto.parse(quantum)
    assert event == AudioEvent((quantum * 3)[:FRAME_BYTES])
    # The 128-byte tail carries over; a long message gives several frames at once.
    events = proto.parse(bytes(FRAME_BYTES * 2))
    assert [len(e.payload) for e in events if isinstance(e, AudioEvent)] == [640, 640]
    assert events[0] == AudioEvent((quantum * 3)[FRAME_BYTES:] + bytes(FRAME_BYTES - 128))
    assert proto.parse(b"") == []


@pytest.mark.parametrize("size", [1, 641, MAX_AUDIO_BYTES + 2])
def test_odd_or_oversized_audio_is_refused(proto: BrowserProtocol, size: int) -> None:
    assert rejected(proto, bytes(size)).code == "bad_message"


def test_the_largest_audio_message_is_taken(proto: BrowserProtocol) -> None:
    events = proto.parse(bytes(MAX_AUDIO_BYTES))
    assert len(events) == MAX_AUDIO_BYTES // FRAME_BYTES


# --- marks, digits, hang-up, errors ---------------------------------------------------


def test_mark_dtmf_and_hangup(proto: BrowserProtocol) -> None:
    assert proto.parse('{"event":"mark","name":"greeting_done"}') == [MarkEvent("greeting_done")]
    assert proto.parse('{"event":"dtmf","digit":"#"}') == [DtmfEvent("#")]
    assert proto.parse('{"event":"hangup"}') == [StopEvent()]


@pytest.mark.parametrize(
    "message",
    [
        '{"event":"mark"}',
        '{"event":"mark","name":""}',
        '{"event":"mark","name":["a"]}',
        json.dumps({"event": "mark", "name": "m" * 129}),
        '{"event":"dtmf","digit":"55"}',
        '{"event":"dtmf"}',
        '{"event":"media"}',
        '{"event":7}',
        '{"type":"start"}',
        "[]",
        "not json",
        "[" * 100_000,
    ],
)
def test_malformed_or_unknown_messages_are_bad_messages(
    proto: BrowserProtocol, message: str
) -> None:
    error = rejected(proto, message)
    assert error.code == "bad_message" and error.message


# --- outbound ------------------------------------------------------------------------


def test_outbound_messages(proto: BrowserProtocol) -> None:
    assert json.loads(proto.format_started()) == {
        "event": "started", "call_id": CALL, "sample_rate": 16000, "frame_bytes": 640
    }
    frame = bytes(range(256)) * 2 + bytes(128)
    assert proto.format_audio(frame) == frame
    assert proto.format_audio(b"\x01\x02") == b"\x01\x02" + bytes(638)
    with pytest.raises(ValueError):
        proto.format_audio(bytes(642))
    assert json.loads(proto.format_mark("utt-1")) == {"event": "mark", "name": "utt-1"}
    assert proto.format_clear() == '{"event":"clear"}'
    assert json.loads(proto.format_transfer({"phoneNumber": "+15555550100"})) == {
        "event": "transfer", "to": "+15555550100"
    }
    assert json.loads(proto.format_transfer({"extensionNumber": "101"}))["to"] == "101"
    assert proto.format_hangup("completed") is None  # the `end` before the close says it
    assert json.loads(proto.format_error("bad_message", "x" * 500)) == {
        "event": "error", "code": "bad_message", "message": "x" * 200
    }
    assert json.loads(proto.format_end("transferred")) == {"event": "end", "reason": "transferred"}


def test_a_mark_name_with_a_lone_surrogate_is_valid_utf8(proto: BrowserProtocol) -> None:
    proto.format_mark("\ud800").encode("utf-8")


# --- the upgrade's Origin -------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "public", "ok"),
    [
        ("http://voice.local:8000", "voice.local:8001", (), None, True),
        ("http://VOICE.local:8000/", "voice.local:8001", (), None, True),
        ("http://[::1]:8000", "[::1]:8001", (), None, True),
        ("http://127.0.0.1:8000", "localhost:8001", (), None, True),  # the printed URLs
        ("http://localhost:8000", "[::1]:8001", (), None, True),
        ("http://localhost.evil.example", "localhost:8001", (), None, False),
        ("https://evil.example", "voice.local:8001", (), None, False),
        ("null", "voice.local:8001", (), None, False),
        ("http://[::1", "voice.local:8001", (), None, False),
        (None, "voice.local:8001", (), None, False),
        ("", "voice.local:8001", (), None, False),
        ("https://console.example", "media.example", (), "https://console.example/x", True),
        ("https://media.example", "media.example", (), "https://console.example", False),
        ("https://a.example", "b.example", ("https://a.example",), "https://c.example", True),
        ("https://c.example", "b.example", ("https://a.example",), "https://c.example", False),
    ],
)
def test_only_the_consoles_origin_opens_a_browser_leg(
    origin: str | None, host: str, allowed: tuple[str, ...], public: str | None, ok: bool
) -> None:
    refusal = console_origin_refusal(origin, host, allowed, public)
    assert (refusal is None) == ok, refusal
    if not ok:
        assert "Origin" in refusal  # type: ignore[operator]


# --- the mint's body ------------------------------------------------------------------


def test_the_mint_body_gives_the_calls_parameters() -> None:
    flows = {"restaurant", "real_estate"}
    assert read_browser_call({}, flows) == {}
    assert read_browser_call({"flow": " restaurant ", "params": {"name": "Ana"}}, flows) == {
        "flow": "restaurant", "name": "Ana"
    }
    assert read_browser_call({"flow": "anything"}, None) == {"flow": "anything"}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"flow": "nope"}, "unknown_flow", "flow"),
        ({"flow": ""}, "bad_request", "flow"),
        ({"flow": 3}, "bad_request", "flow"),
        ({"params": []}, "bad_request", "params"),
        ({"params": {"a": 1}}, "bad_request", "params.a"),
        ({"params": {"a": "x" * 501}}, "bad_request", "params.a"),
        ({"params": {"token": "t"}}, "bad_request", "params.token"),
        ({"params": {"flow": "restaurant"}}, "bad_request", "params.flow"),
        ({"params": {"bad key": "v"}}, "bad_request", "params"),
        ({"params": {f"k{i}": "v" for i in range(21)}}, "bad_request", "params"),
        ({"params": {"a": "\ud800"}}, "bad_request", "params.a"),
        ({"persona": "x"}, "bad_request", "persona"),
    ],
)
def test_a_bad_mint_body_names_the_field(body: dict[str, object], code: str, field: str) -> None:
    with pytest.raises(BadBrowserCall) as info:
        read_browser_call(body, {"restaurant"})
    assert (info.value.code, info.value.field) == (code, field)
    assert str(info.value)

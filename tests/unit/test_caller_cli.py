"""``realtime-voice call``: the script built from options, and failures a user sees."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from realtime_voice.cli import build_parser, main
from realtime_voice.testing.caller_cli import build_script


def _steps(*argv: str) -> list[tuple[str, str]]:
    args = build_parser().parse_args(["call", *argv])
    steps: list[tuple[str, str]] = args.script
    return steps


def test_lines_keep_command_line_order_and_modifiers_apply_to_the_next_line() -> None:
    steps = _steps(
        "--say",
        "hello",
        "--dtmf",
        "5",
        "--barge-in",
        "1.5",
        "--say",
        "stop",
        "--pause",
        "2",
        "--say",
        "bye",
    )
    lines = build_script(steps)
    assert [(line.text, line.dtmf) for line in lines] == [
        ("hello", None),
        (None, "5"),
        ("stop", None),
        ("bye", None),
    ]
    assert [line.barge_in_after_s for line in lines] == [None, None, 1.5, None]
    assert [line.pause_before_s for line in lines] == [0.8, 0.8, 0.8, 2.0]


def test_a_trailing_barge_in_is_an_error() -> None:
    with pytest.raises(ValueError, match="--barge-in must come before"):
        build_script(_steps("--say", "hi", "--barge-in", "1"))


def test_bad_dtmf_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["call", "--dtmf", "x"])
    assert exit_info.value.code == 2
    assert "--dtmf takes one key" in capsys.readouterr().err


def test_wav_lines_are_labelled_with_the_file_name(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "question.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 8000)
    (line,) = build_script(_steps("--wav", str(path)))
    assert line.text == "<question.wav>"
    assert line.audio is not None and len(line.audio) == 8000


def test_unreachable_server_exits_1_and_says_what_to_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is free again: nothing listens there.
    code = main(["call", "--url", f"http://127.0.0.1:{port}", "--dtmf", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"cannot reach http://127.0.0.1:{port}: connection refused" in err
    assert "realtime-voice serve" in err

"""``realtime-voice call``: place a call to a running server from the terminal.

The command plays a telephony gateway (see `realtime_voice.testing.caller`): it answers
through the inbound webhook, streams the caller's lines as real 8 kHz mu-law audio,
plays the bot's audio at real time, prints a timed two-sided transcript as the call
goes, then the whole transcript and a summary. ``--record`` keeps a stereo WAV.

The script is written with options, in the order given on the command line::

    realtime-voice call --say "what time do you open" --dtmf 5 \\
        --barge-in 1.5 --say "actually, can I book a table" --say "thanks, bye"

- ``--say TEXT`` says a line (synthesized offline), ``--wav PATH`` plays a WAV file,
  ``--dtmf DIGIT`` presses a key; each waits until the bot finished speaking, then
  pauses (``--pause``, default 0.8 s) as a person would.
- ``--barge-in SECONDS`` makes the NEXT ``--say`` or ``--wav`` interrupt the bot: it
  starts that many seconds after the bot's reply starts playing.
- ``--interactive`` reads the caller's lines from the terminal instead; ``key 5``
  presses a key, an empty line or end of input hangs up.

Exit status: 0 when the call connected and ended normally, 1 when the webhook or the
media connection failed (or the server closed the call abnormally), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_script", "register"]

_DIGITS = "0123456789*#ABCD"
_KEY_LINE = re.compile(r"^key\s+([0-9*#A-D])$", re.IGNORECASE)
_NORMAL_CLOSE = (1000, 1001)


class _ScriptStep(argparse.Action):
    """Append ``(option kind, value)`` to one shared list, keeping command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        kind = self.metavar_kind
        value = str(values)
        if kind == "dtmf" and (len(value) != 1 or value.upper() not in _DIGITS):
            parser.error(f"--dtmf takes one key of 0-9, *, #, A-D, got {value!r}")
        if kind in ("barge_in", "pause"):
            try:
                seconds = float(value)
            except ValueError:
                parser.error(f"{option_string} takes seconds, got {value!r}")
            if seconds < 0:
                parser.error(f"{option_string} must not be negative")
        steps: list[tuple[str, str]] = list(getattr(namespace, "script", None) or [])
        steps.append((kind, value.upper() if kind == "dtmf" else value))
        namespace.script = steps

    @property
    def metavar_kind(self) -> str:
        """The step kind this option adds (stored in ``const``)."""
        return str(self.const)


def _default_url() -> str:
    return f"http://localhost:{os.environ.get('VOICE_HTTP_PORT', '8000')}"


def register(subparsers: Any) -> None:
    """Add the ``call`` sub-command."""
    from realtime_voice.testing.caller import PROTOCOLS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call",
        help="call a running server as a simulated phone gateway",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    step: dict[str, Any] = {"action": _ScriptStep, "dest": "script", "default": []}
    parser.add_argument("--say", metavar="TEXT", const="say", help="the caller says TEXT", **step)
    parser.add_argument(
        "--wav", metavar="PATH", const="wav", help="the caller plays a 16-bit WAV", **step
    )
    parser.add_argument(
        "--dtmf", metavar="DIGIT", const="dtmf", help="the caller presses a key", **step
    )
    parser.add_argument(
        "--barge-in",
        metavar="SECONDS",
        const="barge_in",
        help="the NEXT --say/--wav interrupts the bot SECONDS after its reply starts playing",
        **step,
    )
    parser.add_argument(
        "--pause",
        metavar="SECONDS",
        const="pause",
        help="silence before the NEXT line, after the bot finished (default 0.8)",
        **step,
    )
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="type the caller's lines at a prompt ('key 5' presses 5; empty line hangs up)",
    )
    parser.add_argument(
        "--url", default=_default_url(), help="server HTTP url (default: %(default)s)"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="ringcentral",
        help="media protocol; a carrier is answered through its own webhook "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        choices=(8000, 16000),
        default=8000,
        help="the stream's rate where the carrier lets the answer choose it (exotel)",
    )
    parser.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD",
        help="Basic credentials the carrier presents (exotel: EXOTEL_API_KEY:EXOTEL_API_TOKEN)",
    )
    parser.add_argument("--media-url", help="override the media WebSocket url")
    parser.add_argument("--record", metavar="PATH", help="write a stereo WAV (caller L, bot R)")
    parser.add_argument("--from", dest="from_number", default="+15555551234", help="caller number")
    parser.add_argument("--to", dest="to_number", default="+15555555678", help="dialled number")
    parser.add_argument("--call-id", default="", help="call id (default: random)")
    parser.add_argument(
        "--param",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="custom parameter for the start message (repeatable)",
    )
    parser.add_argument("--verification-token", help="webhook Verification-Token header")
    parser.add_argument(
        "--no-transcribe", action="store_true", help="do not transcribe the bot's speech"
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="hang up after this long (default: %(default)s)",
    )
    parser.add_argument(
        "--end-after",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="after the last line, hang up once the bot is silent this long (default 3)",
    )
    parser.set_defaults(func=_run)


def build_script(steps: Sequence[tuple[str, str]]) -> list[Any]:
    """Turn ``(kind, value)`` steps from the command line into `CallerLine` values.

    Args:
        steps: ``say``/``wav``/``dtmf`` lines and ``barge_in``/``pause`` modifiers
            that apply to the next line.

    Returns:
        The caller's lines, in order.

    Raises:
        ValueError: a modifier with no line after it, or a WAV that cannot be read.
    """
    from realtime_voice.testing.caller import CallerLine
    from realtime_voice.testing.speech import wav_to_mulaw

    lines: list[Any] = []
    barge_in: float | None = None
    pause = 0.8
    for kind, value in steps:
        if kind == "barge_in":
            barge_in = float(value)
        elif kind == "pause":
            pause = float(value)
        elif kind == "dtmf":
            if barge_in is not None:
                raise ValueError("--barge-in applies to --say or --wav, not --dtmf")
            lines.append(CallerLine(dtmf=value, pause_before_s=pause))
            pause = 0.8
        else:
            if kind == "say":
                line = CallerLine(text=value, pause_before_s=pause, barge_in_after_s=barge_in)
            else:
                audio = wav_to_mulaw(value)
                line = CallerLine(
                    text=f"<{Path(value).name}>",
                    audio=audio,
                    pause_before_s=pause,
                    barge_in_after_s=barge_in,
                )
            lines.append(line)
            barge_in = None
            pause = 0.8
    if barge_in is not None:
        raise ValueError("--barge-in must come before the --say or --wav it applies to")
    return lines


def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


async def _typed_lines() -> AsyncIterator[Any]:
    """Caller lines typed at the terminal, without blocking the event loop.

    A daemon thread reads stdin (a blocking read cannot be cancelled, and a daemon
    thread does not keep the process alive after the call) and hands lines over.
    """
    from realtime_voice.testing.caller import CallerLine

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for raw in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, raw.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="call-stdin", daemon=True).start()
    print(
        "type what the caller says and press Enter ('key 5' presses 5; "
        "an empty line or Ctrl-D hangs up)",
        flush=True,
    )
    while True:
        text = await queue.get()
        if text is None or not text.strip():
            return
        key = _KEY_LINE.match(text.strip())
        if key:
            yield CallerLine(dtmf=key.group(1).upper(), pause_before_s=0.3)
        else:
            yield CallerLine(text=text.strip(), pause_before_s=0.3)


def _run(args: argparse.Namespace) -> int:
    from realtime_voice.testing.call_report import format_event
    from realtime_voice.testing.caller import CallOptions, CallSetupError, SimulatedCaller

    try:
        lines = build_script(args.script)
        params = _parse_params(args.param)
    except (ValueError, OSError) as exc:
        print(f"realtime-voice call: {exc}", file=sys.stderr)
        return 2
    if args.interactive and lines:
        print(
            "realtime-voice call: --interactive cannot be combined with a script", file=sys.stderr
        )
        return 2
    if args.basic_auth is not None and ":" not in args.basic_auth:
        print("realtime-voice call: --basic-auth must be USER:PASSWORD", file=sys.stderr)
        return 2
    options = CallOptions(
        http_url=args.url,
        protocol=args.protocol,
        media_url=args.media_url,
        call_id=args.call_id,
        from_number=args.from_number,
        to_number=args.to_number,
        custom_parameters=params,
        verification_token=args.verification_token,
        record_path=args.record,
        transcribe_bot=not args.no_transcribe,
        # A person at the terminal wants to read the bot's words as they come.
        transcribe_during_call=True,
        max_call_s=args.max_duration,
        end_after_last_line_s=0.5 if args.interactive else args.end_after,
        reply_timeout_s=3.0 if args.interactive else 15.0,
        on_event=lambda event: print(format_event(event), flush=True),
        sample_rate=args.sample_rate,
        basic_auth=_basic_auth(args.basic_auth),
    )
    caller = SimulatedCaller(options)
    print(
        f"calling {args.url} as {options.protocol} gateway, call id {options.call_id}", flush=True
    )
    try:
        report = asyncio.run(caller.run(_typed_lines() if args.interactive else lines))
    except CallSetupError as exc:
        print(f"realtime-voice call: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("realtime-voice call: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # TTS missing or failing: say what, not a traceback
        print(f"realtime-voice call: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n--- transcript ---")
    print(report.format_transcript())
    print("\n--- summary ---")
    print(report.summary())
    if report.close_code not in _NORMAL_CLOSE:
        print(
            f"realtime-voice call: the server closed the media connection with "
            f"{report.close_code} {report.close_reason}".rstrip(),
            file=sys.stderr,
        )
        return 1
    return 0


def _basic_auth(raw: str | None) -> tuple[str, str] | None:
    if raw is None:
        return None
    user, _, password = raw.partition(":")
    return user, password

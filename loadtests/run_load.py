"""One command for a load test: a local stack and a headless locust run, with reports.

Starts the server and the Deepgram and OpenAI simulators as separate processes
(`stack.LocalStack`, with the simulators' delays for the first STT result, the first LLM
token and the first TTS byte), runs ``loadtests/locustfile.py`` headless against it,
leaves locust's CSV and HTML reports in ``--out``, and prints a short summary: turn
latency and barge-in percentiles per protocol, calls, webhook and ops requests,
failures, and the server's CPU and memory.

Run::

    python loadtests/run_load.py --users 20 --spawn-rate 2 --run-time 2m --out /tmp/load

``--users`` counts callers (phone lines, each placing one call after another); one
webhook user and one ops user run beside them unless ``--no-webhook``/``--no-ops``.
Arguments after ``--`` go to locust as they are.

Exit status: 0 when every request succeeded; 1 when locust reported a failure (or
exited with an error); 2 for bad usage or a stack that did not start.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from locust_voice.scripts import SCRIPTS, scripted_transcripts
from locust_voice.warm_up import warm_up
from stack import LocalStack, StackError

__all__ = ["main", "summarize"]

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
_CALLERS = {
    "ringcentral": ["RingCentralCaller"],
    "twilio": ["TwilioCaller"],
    "exotel": ["ExotelCaller"],
    "telnyx": ["TelnyxCaller"],
    "plivo": ["PlivoCaller"],
    "vonage": ["VonageCaller"],
}
_CALLERS["both"] = _CALLERS["ringcentral"] + _CALLERS["twilio"]
_STOP_TIMEOUT_S = 15  # a caller hangs up within a frame; the close handshake is quick


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Arguments after -- are passed to locust.",
    )
    parser.add_argument("--users", type=int, required=True, help="concurrent callers")
    parser.add_argument("--spawn-rate", type=float, default=1.0, help="callers started per s")
    parser.add_argument("--run-time", default="2m", help="locust run time (e.g. 90s, 2m)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--protocol", choices=sorted(_CALLERS), default="both")
    parser.add_argument("--engines", choices=("simulated", "offline"), default="simulated")
    parser.add_argument("--stt-first-result-ms", type=float, default=0.0, metavar="MS")
    parser.add_argument("--llm-first-token-ms", type=float, default=0.0, metavar="MS")
    parser.add_argument("--tts-first-byte-ms", type=float, default=0.0, metavar="MS")
    parser.add_argument("--call-script", choices=sorted(SCRIPTS), default="restaurant")
    parser.add_argument(
        "--webhook-rate", type=float, default=2.0, help="webhook user's requests per second"
    )
    parser.add_argument("--ops-interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--no-webhook", action="store_true", help="no webhook user")
    parser.add_argument("--no-ops", action="store_true", help="no ops user")
    parser.add_argument("--max-calls", type=int, default=1000, help="the server's VOICE_MAX_CALLS")
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="skip the untimed warm-up calls before the run (the simulators then pay each "
        "line's first synthesis during the measured run)",
    )
    parser.add_argument(
        "--turn-timeout", type=float, default=10.0, help="seconds a turn may wait for its answer"
    )
    parser.add_argument(
        "--greeting-timeout", type=float, default=10.0, help="seconds to the greeting's audio"
    )
    return parser


@dataclass(frozen=True)
class Row:
    """One line of locust's ``*_stats.csv``."""

    type: str
    name: str
    count: int
    failures: int
    p50: str
    p95: str
    p99: str


def read_stats(path: Path) -> list[Row]:
    """The rows of a locust stats CSV (the ``Aggregated`` line included, type empty)."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Row(
                r["Type"],
                r["Name"],
                int(r["Request Count"]),
                int(r["Failure Count"]),
                r["50%"],
                r["95%"],
                r["99%"],
            )
            for r in csv.DictReader(f)
        ]


def summarize(rows: Sequence[Row]) -> list[str]:
    """The summary lines: voice measurements per protocol, then the HTTP users, then totals."""
    lines = [f"{'':44} {'n':>6} {'fail':>5} {'p50':>7} {'p95':>7} {'p99':>7}  (ms)"]
    order = {"turn": 0, "barge_in": 1, "call": 2, "ws": 3}
    voice = sorted((r for r in rows if r.type in order), key=lambda r: (order[r.type], r.name))
    for r in voice:
        label = f"{r.type} {r.name}"
        lines.append(f"{label:44} {r.count:>6} {r.failures:>5} {r.p50:>7} {r.p95:>7} {r.p99:>7}")
    for title, test in (
        ("webhook requests", lambda r: "webhook" in r.name),
        ("caller webhook requests", lambda r: r.name.endswith("(caller)")),
        ("ops requests", lambda r: "health" in r.name or r.name == "/metrics"),
    ):
        picked = [r for r in rows if r.type not in order and r.type and test(r)]
        if picked:
            lines.append(
                f"{title:44} {sum(r.count for r in picked):>6} {sum(r.failures for r in picked):>5}"
            )
    total = next((r for r in rows if r.name == "Aggregated"), None)
    if total is not None:
        lines.append(f"{'all requests':44} {total.count:>6} {total.failures:>5}")
    return lines


def _locust_command(args: argparse.Namespace, stack: LocalStack, token: str) -> list[str]:
    classes = list(_CALLERS[args.protocol])
    if not args.no_webhook:
        classes.append("WebhookUser")
    if not args.no_ops:
        classes.append("OpsUser")
    out = args.out.resolve()
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(args.users + len(classes) - len(_CALLERS[args.protocol])),
        "--spawn-rate", str(args.spawn_rate), "--run-time", args.run_time,
        "--stop-timeout", str(_STOP_TIMEOUT_S), "--only-summary",
        "--csv", str(out / "locust"), "--html", str(out / "report.html"),
        "--host", stack.http_url, "--media-url", stack.media_url,
        "--rc-verification-token", token, "--call-script", args.call_script,
        "--webhook-rate", str(args.webhook_rate), "--ops-interval", str(args.ops_interval),
        "--turn-timeout", str(args.turn_timeout),
        "--greeting-timeout", str(args.greeting_timeout),
        *args.locust_args, *classes,
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack and locust; print the summary; the exit status (see the module)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = _parser().parse_args(argv)
    args.locust_args = extra
    if args.users < 1 or args.spawn_rate <= 0:
        print("run_load: --users must be at least 1 and --spawn-rate positive", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    # In the simulated stack the Deepgram simulator "recognises" each utterance as the
    # next line of this list, so the flow hears the script's own lines.
    transcripts = scripted_transcripts(SCRIPTS[args.call_script])
    stack = LocalStack(
        args.out / "stack",
        stt_first_result_ms=args.stt_first_result_ms,
        llm_first_token_ms=args.llm_first_token_ms,
        tts_first_byte_ms=args.tts_first_byte_ms,
        engines=args.engines,
        server_env={"RC_WEBHOOK_VERIFICATION_TOKEN": token},
        max_calls=args.max_calls,
        transcripts=transcripts,
    )
    try:
        stack.start()
    except StackError as exc:
        print(f"run_load: the stack did not start: {exc}", file=sys.stderr)
        return 2
    try:
        if not args.no_warm_up:
            script = SCRIPTS[args.call_script]
            for line in warm_up(stack.http_url, token, script, len(transcripts)):
                print(f"run_load: {line}", flush=True)
        server = psutil.Process(stack.server_pid)
        cpu_before, wall_before = server.cpu_times(), time.monotonic()
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        # Locust reads locust.conf/pyproject.toml from its working directory: run it in
        # the output directory so nothing there changes the run.
        # Locust is the only child that ends here, so the change in the children's usage
        # is its CPU time: the load generator's own cost, to tell its limits from ours.
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        code = subprocess.call(_locust_command(args, stack, token), cwd=args.out, env=env)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_after, wall = server.cpu_times(), time.monotonic() - wall_before
        rss = server.memory_info().rss
    finally:
        stack.stop()
    stats_path = args.out / "locust_stats.csv"
    if not stats_path.is_file():
        print(f"run_load: locust left no {stats_path} (exit status {code})", file=sys.stderr)
        return 1
    rows = read_stats(stats_path)
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    locust_cpu_s = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    print()
    print(
        f"realtime-voice load: {args.users} callers ({args.protocol}, {args.call_script} "
        f"script), {args.run_time}, {args.engines} engines (first STT result "
        f"+{args.stt_first_result_ms:g} ms, LLM token +{args.llm_first_token_ms:g} ms, "
        f"TTS byte +{args.tts_first_byte_ms:g} ms)"
    )
    for line in summarize(rows):
        print(line)
    print(
        f"server: {cpu_s / wall:.2f} cores on average over the run, RSS {rss / 2**20:.0f} MiB "
        f"at the end; load generator (locust): {locust_cpu_s / wall:.2f} cores "
        f"({os.cpu_count()} CPUs)"
    )
    print(f"reports: {args.out / 'report.html'}, {args.out}/locust_*.csv; logs: {stack.out_dir}")
    failures = sum(r.failures for r in rows if r.name == "Aggregated")
    return 1 if code != 0 or failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

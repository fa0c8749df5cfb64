"""The one load-test command, run as a load tester runs it, judged from its reports.

``loadtests/run_load.py`` starts the server and both provider simulators as processes and
runs locust headless against them: two callers per media protocol (a short script with
two barge-ins), the webhook user and the ops user, for 20 seconds. The test then reads
locust's CSV the way a load tester would. Deadlines are generous (30 s per turn) so a
slow, busy machine is not a failure; nothing here is timed.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUN_LOAD = ROOT / "loadtests" / "run_load.py"


def _stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def load_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the one command once for the whole module (about 45 s)."""
    out = tmp_path_factory.mktemp("load")
    command = [
        sys.executable, str(RUN_LOAD),
        "--users", "4", "--spawn-rate", "4", "--run-time", "20s", "--out", str(out),
        "--protocol", "both", "--call-script", "short", "--no-warm-up",
        "--turn-timeout", "30", "--greeting-timeout", "30",
        "--webhook-rate", "4", "--ops-interval", "1",
    ]  # fmt: skip
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    return result, out


def test_the_run_succeeds_and_leaves_its_reports(
    load_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = load_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<html" in html.lower()
    assert "end_of_speech_to_first_audio (twilio)" in html
    with (out / "locust_failures.csv").open(newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == []
    # The summary a load tester reads at the end of the run.
    assert "turn end_of_speech_to_first_audio (ringcentral)" in result.stdout
    assert "barge_in speech_to_clear (twilio)" in result.stdout


@pytest.mark.parametrize("protocol", ["ringcentral", "twilio"])
def test_every_call_measured_turns_and_barge_ins_without_failures(
    load_run: tuple[subprocess.CompletedProcess[str], Path], protocol: str
) -> None:
    stats = _stats(load_run[1] / "locust_stats.csv")
    for key in (
        ("turn", f"end_of_speech_to_first_audio ({protocol})"),
        ("barge_in", f"speech_to_clear ({protocol})"),
        ("call", f"greeting_first_audio ({protocol})"),
        ("call", f"whole_call ({protocol})"),
        ("ws", f"connect ({protocol})"),
    ):
        assert key in stats, f"no {key} row: {sorted(stats)}"
        assert int(stats[key]["Request Count"]) >= 1, key
        assert stats[key]["Failure Count"] == "0", key
    # A turn time is the bot's answer time, never zero or negative.
    turn = stats[("turn", f"end_of_speech_to_first_audio ({protocol})")]
    assert float(turn["Min Response Time"]) > 0


def test_webhook_and_ops_requests_all_succeeded(
    load_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    stats = _stats(load_run[1] / "locust_stats.csv")
    expected = [
        ("POST", "/api/ringcentral/webhook Proceeding"),
        ("POST", "/api/ringcentral/webhook Answered"),
        ("POST", "/api/ringcentral/webhook Disconnected"),
        ("POST", "/api/voice/inbound (webhook)"),
        ("POST", "/api/voice/inbound (caller)"),
        ("POST", "/api/voice/twilio/incoming (caller)"),
        ("GET", "/api/voice/realtime/health (http)"),
        ("GET", "/api/voice/realtime/health (media)"),
        ("GET", "/metrics"),
    ]
    for key in expected:
        assert key in stats, f"no {key} row: {sorted(stats)}"
        assert int(stats[key]["Request Count"]) >= 1, key
        assert stats[key]["Failure Count"] == "0", key

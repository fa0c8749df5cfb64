"""The SIP load benchmark, run as a load tester runs it, judged from its table.

``loadtests/bench_sip_load.py`` starts one server process (offline engines, a SIP
listening port), places 2 SIPp PCMU calls and then 2 Twilio WebSocket calls against it
and prints one table. The test checks both rows are there, with figures, both calls of
each path succeeded and none failed. Nothing here is timed: the subprocess bound only
stops a hung run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from realtime_voice.testing.sipp import sipp_available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not sipp_available(), reason="sipp not installed (apt-get install sip-tester)"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "loadtests" / "bench_sip_load.py"
_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _row(stdout: str, path: str) -> list[str]:
    lines = [line for line in stdout.splitlines() if line.startswith(path)]
    assert len(lines) == 1, f"expected one {path!r} row:\n{stdout[-3000:]}"
    return [cell.strip() for cell in lines[0].split("|")]


def test_two_calls_on_each_path_fill_the_table_without_failures(tmp_path: Path) -> None:
    command = [
        sys.executable, str(BENCH), "--calls", "2", "--hold-s", "6", "--settle-s", "2",
        "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    assert "CPU ms/call-s" in result.stdout and "calls ok/failed" in result.stdout, output
    for path in ("sip (SIPp PCMU)", "twilio (WebSocket)"):
        cells = _row(result.stdout, path)
        _name, calls, cpu, jitter, _loss, _turn, _turns, _wait, outcome = cells
        assert calls == "2", cells
        assert _NUMBER.match(cpu) and float(cpu) > 0, cells
        # The SIP capture needs CAP_NET_RAW; without it the bench says n/a, never guesses.
        assert _NUMBER.match(jitter) or jitter == "n/a", cells
        assert outcome == "2/0", cells

"""Back-channel fillers: not a turn, not an interruption."""

from __future__ import annotations

import pytest

from ai_pipeline.nlp import is_backchannel


@pytest.mark.parametrize(
    "text",
    ["uh-huh", "Uh huh.", "mm-hmm", "Mhm.", "hmm", "yeah", "Yeah, yeah.", "okay", "OK.",
     "right", "right, right", "haan", "haan ji", "achha", "I see", "got it", "oh okay",
     "yeah okay uh huh"],
)  # fmt: skip
def test_fillers(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    ["", "yes", "no", "sure", "okay so what about parking", "yeah I want to book a table",
     "right now please", "hold on", "stop", "wait", "uh huh but how much is it"],
)  # fmt: skip
def test_not_fillers(text: str) -> None:
    assert not is_backchannel(text)

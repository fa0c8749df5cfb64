"""The durable spool: order, crash safety, size bound, one owner per directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime_voice.storage.spool import Spool, SpoolError, SpoolFullError, SpoolLockedError


def drain(spool: Spool, chunk: int = 3) -> list[str]:
    """Read and commit everything, returning the lines in the order read."""
    seen: list[str] = []
    while (part := spool.peek(chunk)) is not None:
        seen += part.lines
        spool.commit(part)
    return seen


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool", segment_bytes=64)
    s.open()
    yield s
    s.close()


def test_lines_come_back_in_order_across_segments(spool: Spool) -> None:
    lines = [f'{{"n":{i}}}' for i in range(40)]
    for i in range(0, 40, 7):
        spool.append(lines[i : i + 7])
    assert spool.depth == 40
    assert len(list(spool.directory.glob("segment-*.jsonl"))) > 1
    assert drain(spool) == lines
    assert spool.depth == 0 and not spool.pending
    assert list(spool.directory.glob("segment-*")) == []


def test_peek_without_commit_reads_the_same_lines_again(spool: Spool) -> None:
    spool.append(["a", "b", "c"])
    first = spool.peek(2)
    assert first is not None and first.lines == ["a", "b"]
    again = spool.peek(2)
    assert again is not None and again.lines == ["a", "b"]
    spool.commit(first)
    spool.commit(again)  # committing twice is harmless
    rest = spool.peek(10)
    assert rest is not None and rest.lines == ["c"]
    assert spool.depth == 1


def test_a_new_instance_finds_what_the_old_one_left(tmp_path: Path) -> None:
    old = Spool(tmp_path / "spool", segment_bytes=32)
    old.open()
    old.append([f"line-{i}" for i in range(10)])
    part = old.peek(4)
    assert part is not None
    old.commit(part)  # four replayed before the "crash"
    old.close()

    new = Spool(tmp_path / "spool", segment_bytes=32)
    assert new.open() == 6
    new.append(["line-10"])
    assert drain(new) == [f"line-{i}" for i in range(4, 11)]
    new.close()


def test_a_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    old = Spool(tmp_path / "spool")
    old.open()
    old.append(["one", "two"])
    old.close()
    segment = next((tmp_path / "spool").glob("segment-*.jsonl"))
    with open(segment, "ab") as fh:
        fh.write(b'{"half a reco')  # the process died in the middle of a write

    new = Spool(tmp_path / "spool")
    assert new.open() == 2
    new.append(["three"])
    assert drain(new) == ["one", "two", "three"]
    new.close()


def test_full_spool_refuses_and_writes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=20)
    spool.open()
    spool.append(["0123456789"])  # 11 bytes with the newline
    with pytest.raises(SpoolFullError):
        spool.append(["0123456789"])
    assert spool.depth == 1
    assert drain(spool) == ["0123456789"]
    spool.append(["0123456789"])  # space again once replayed
    assert spool.depth == 1
    spool.close()


def test_one_process_per_directory(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool")
    first.open()
    second = Spool(tmp_path / "spool")
    with pytest.raises(SpoolLockedError):
        second.open()
    first.close()
    assert second.open() == 0
    second.close()


def test_append_before_open_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpoolError):
        Spool(tmp_path / "spool").append(["x"])


def test_a_line_with_a_newline_is_refused(spool: Spool) -> None:
    with pytest.raises(ValueError):
        spool.append(["two\nlines"])
    assert spool.depth == 0


def test_rejected_lines_are_kept_apart(spool: Spool) -> None:
    spool.reject(['{"bad": 1}', "not json"], "refused")
    assert (spool.directory / "rejected.jsonl").read_text().splitlines() == [
        '{"bad": 1}', "not json",
    ]
    assert spool.depth == 0

"""The operator token: configured, generated once into the data directory, read back."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from realtime_voice.cli.serve import console_banner
from realtime_voice.config_console import ConsoleSettings
from realtime_voice.security.operator_token import (
    OperatorToken,
    OperatorTokenError,
    find_operator_token,
    load_or_create_operator_token,
)


def console(tmp_path: Path) -> ConsoleSettings:
    return ConsoleSettings(data_dir=str(tmp_path / "data"))


def test_a_configured_token_wins_and_nothing_is_written(tmp_path: Path) -> None:
    token = load_or_create_operator_token(console(tmp_path), "from-the-environment")
    assert (token.token, token.source, token.path) == ("from-the-environment", "env", None)
    assert not (tmp_path / "data").exists()


def test_the_first_start_generates_a_private_file_and_later_starts_read_it(
    tmp_path: Path,
) -> None:
    first = load_or_create_operator_token(console(tmp_path), None)
    path = tmp_path / "data" / "api-token"
    assert first.source == "generated"
    assert first.path == path
    assert len(first.token) >= 40  # 32 random bytes, URL-safe
    assert path.read_text() == first.token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["api-token"]  # no temporary left

    again = load_or_create_operator_token(console(tmp_path), None)
    assert (again.token, again.source, again.path) == (first.token, "file", path)
    assert first.token not in repr(first)  # never in a repr (nor so in a log line)


def test_an_operators_own_token_in_the_file_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-token"
    path.parent.mkdir()
    path.write_text("  my-own-operator-token-1234  \n")
    path.chmod(0o600)
    assert load_or_create_operator_token(console(tmp_path), None).token == (
        "my-own-operator-token-1234")


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"short", "does not hold a token"),
        (b"two words in-the-token-file", "does not hold a token"),
        (b"\xff\xfe" + b"x" * 30, "does not hold a token"),
        (b"x" * 5000, "does not hold a token"),
    ],
)
def test_an_unusable_file_stops_start_up_naming_it_and_is_left_alone(
    tmp_path: Path, content: bytes, complaint: str
) -> None:
    path = tmp_path / "data" / "api-token"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(OperatorTokenError) as caught:
        load_or_create_operator_token(console(tmp_path), None)
    assert str(path) in str(caught.value)
    assert complaint in str(caught.value)
    assert path.read_bytes() == content


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    # A directory in its place: unreadable as a file whoever runs the test (root too).
    path = tmp_path / "data" / "api-token"
    path.mkdir(parents=True)
    with pytest.raises(OperatorTokenError, match="cannot be read") as caught:
        load_or_create_operator_token(console(tmp_path), None)
    assert str(path) in str(caught.value)
    assert path.is_dir()


def test_a_data_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = ConsoleSettings(data_dir=str(blocker / "data"))
    with pytest.raises(OperatorTokenError) as caught:
        load_or_create_operator_token(settings, None)
    assert str(blocker / "data" / "api-token") in str(caught.value)


def test_processes_racing_at_first_start_agree_on_one_token(tmp_path: Path) -> None:
    # Threads stand in for processes: the file system decides who wins either way.
    start = threading.Barrier(8)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def boot() -> None:
        start.wait()
        token = load_or_create_operator_token(console(tmp_path), None)
        with lock:
            results.append((token.token, token.source))

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8
    assert len({token for token, _ in results}) == 1
    assert [source for _, source in results].count("generated") == 1
    path = tmp_path / "data" / "api-token"
    assert path.read_text().strip() == results[0][0]
    assert [p.name for p in path.parent.iterdir()] == ["api-token"]


def test_clients_find_the_token_as_the_server_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert find_operator_token({"VOICE_DATA_DIR": str(data)}) is None
    made = load_or_create_operator_token(console(tmp_path), None)
    assert find_operator_token({"VOICE_DATA_DIR": str(data)}) == made.token
    env = {"VOICE_DATA_DIR": str(data), "VOICE_API_TOKEN": " configured "}
    assert find_operator_token(env) == "configured"
    (data / "api-token").write_text("")
    assert find_operator_token({"VOICE_DATA_DIR": str(data)}) is None


def test_serve_prints_the_token_only_at_the_start_that_generated_it() -> None:
    path = Path("/srv/voice/var/api-token")
    first = console_banner(OperatorToken("tok-123", "generated", path), "http://127.0.0.1:8000")
    assert "http://127.0.0.1:8000/login?token=tok-123" in first
    assert str(path) in first
    later = console_banner(OperatorToken("tok-123", "file", path), "http://127.0.0.1:8000")
    assert "tok-123" not in later
    assert "http://127.0.0.1:8000/" in later and str(path) in later
    configured = console_banner(OperatorToken("tok-123", "env"), "https://voice.example.com")
    assert "tok-123" not in configured
    assert "https://voice.example.com/" in configured and "VOICE_API_TOKEN" in configured

"""Starting the project's own command line as child processes: free ports and the command.

Shared by the process-level end-to-end tests and the load-test stack, which both run
``realtime-voice`` exactly as an operator does.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["child_environment", "cli_command", "free_ports"]

# What configures a server, a simulator or a provider client: never inherited by a child,
# so a developer's own keys or a stray VOICE_* in the shell cannot change what runs.
_SERVER_PREFIXES = ("VOICE_", "DEEPGRAM_", "OPENAI_", "RC_", "TWILIO_")
_SERVER_NAMES = frozenset({"STT_PROVIDER", "TTS_PROVIDER", "LLM_PROVIDER", "DATABASE_URL"})


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process of the stack, without any server setting.

    Args:
        environ: the environment to start from (default: this process's).

    Returns:
        ``environ`` without the server's, simulators' and providers' variables, with the
        loopback exempt from proxies and Python output unbuffered (logs arrive as they
        are written).
    """
    source = os.environ if environ is None else environ
    env = {
        key: value
        for key, value in source.items()
        if not key.startswith(_SERVER_PREFIXES) and key not in _SERVER_NAMES
    }
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the kernel reports free on the loopback.

    The sockets are held open together so the kernel cannot hand the same port out twice;
    they are closed before returning, so a child binding later can still (rarely) race
    another process, the accepted cost of not letting the server bind port 0.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cli_command(*args: str) -> list[str]:
    """The command line of ``realtime-voice ARGS`` for the running interpreter.

    The console script beside the interpreter is what users run; without it (a checkout
    that is not installed) the CLI's ``main`` is called the way the script does.
    """
    script = Path(sys.executable).with_name("realtime-voice")
    if script.is_file():
        return [str(script), *args]
    launcher = "import sys; from realtime_voice.cli import main; sys.exit(main())"
    return [sys.executable, "-c", launcher, *args]

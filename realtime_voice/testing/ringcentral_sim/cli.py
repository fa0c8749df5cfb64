"""``realtime-voice simulate ringcentral``: the RingCentral simulator on its own.

`add_arguments` and `run` are what ``realtime_voice.cli.simulate`` expects of every
simulator; `run` listens until Ctrl-C or SIGTERM and prints the ``RC_*`` settings that
point a server at it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from realtime_voice.testing.ringcentral_sim.simulator import RingCentralSimulator

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``realtime-voice simulate ringcentral``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    parser.add_argument("--client-id", default="sim-client-id", help="accepted RC_CLIENT_ID")
    parser.add_argument(
        "--client-secret", default="sim-client-secret", help="accepted RC_CLIENT_SECRET"
    )
    parser.add_argument("--jwt", default="sim-jwt-assertion", help="accepted RC_JWT_TOKEN")
    parser.add_argument(
        "--token-ttl", type=int, default=3600, help="access token lifetime in seconds"
    )
    parser.add_argument(
        "--strict-sessions",
        action="store_true",
        help="answer 404 for telephony sessions it was not told about (default: create them)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM."""

    async def main() -> None:
        sim = RingCentralSimulator(
            client_id=args.client_id,
            client_secret=args.client_secret,
            jwt=args.jwt,
            token_ttl_s=args.token_ttl,
            auto_sessions=not args.strict_sessions,
        )
        url = await sim.start(args.host, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        print(
            f"RingCentral simulator on {url}\n"
            f"  RC_SERVER_URL={url} RC_CLIENT_ID={args.client_id} "
            f"RC_CLIENT_SECRET={args.client_secret} RC_JWT_TOKEN={args.jwt}\n"
            "Ctrl-C to stop.",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await sim.close()

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"realtime-voice simulate ringcentral: {exc}")
        return 1
    return 0

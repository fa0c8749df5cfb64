"""``realtime-voice dial NUMBER``: place a call through the running server's SIP device.

It asks the server (``POST /api/calls/outbound``, with the operator token: ``--token``,
else ``VOICE_API_TOKEN``, else the token file the server generated in the data directory,
``<VOICE_DATA_DIR>/api-token``) to call the number with a flow and its context, and
prints how the dial ended. Exit codes: 0 answered, 1 busy / no answer / failed, 2 a usage
or configuration error, 3 the server could not be reached or refused.

Example, the seeds' real-estate lead call::

    realtime-voice dial +15551230000 --flow real_estate \\
        --param customer_name=Dana --param property="2 bed condo on Elm St"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``dial`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dial",
        help="place an outbound call through the SIP device",
        description="Place a call through the running server's RingCentral SIP device and "
        "print how it ended (answered, busy, no_answer, failed).",
    )
    parser.add_argument("number", help="E.164 number, extension, or sip: URI")
    parser.add_argument("--flow", help="conversation flow (e.g. real_estate)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a custom parameter for the flow (repeatable)")
    parser.add_argument("--ring-timeout", type=float, default=60.0, metavar="S",
                        help="seconds to ring before giving up (default 60)")
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the server's HTTP base URL (default http://127.0.0.1:8000)")
    parser.add_argument("--token", help="operator token (default: VOICE_API_TOKEN, else "
                        "<VOICE_DATA_DIR>/api-token)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from realtime_voice.security.operator_token import find_operator_token

    token = args.token or find_operator_token(os.environ)
    if not token:
        print("realtime-voice dial: no operator token: pass --token, set VOICE_API_TOKEN, or "
              "run where the server's data directory is (VOICE_DATA_DIR)", file=sys.stderr)
        return 2
    parameters: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"realtime-voice dial: --param {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        parameters[key] = value
    body: dict[str, Any] = {"to": args.number, "parameters": parameters,
                            "ring_timeout_s": args.ring_timeout}
    if args.flow:
        body["flow"] = args.flow
    return asyncio.run(_post(args.url.rstrip("/"), token, body, args.ring_timeout))


async def _post(base: str, token: str, body: dict[str, Any], ring_s: float) -> int:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=ring_s + 30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
            f"{base}/api/calls/outbound", json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            text = await resp.text()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"realtime-voice dial: cannot reach {base}: {exc or type(exc).__name__}",
              file=sys.stderr)
        return 3
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        answer = {"error": text[:200]}
    if status != 200:
        # Refusals of the operator check carry a code and a message; the route's own errors
        # a message only.
        reason = answer.get("message") or answer.get("error", answer)
        print(f"realtime-voice dial: {status}: {reason}", file=sys.stderr)
        return 3
    print(f"{answer['outcome']} ({answer['detail']}), call {answer['call_id']}")
    return 0 if answer["outcome"] == "answered" else 1

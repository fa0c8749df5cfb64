"""``realtime-voice ringcentral``: manage the RingCentral webhook subscription.

The set-up step a RingCentral admin runs once the server is reachable over HTTPS::

    realtime-voice ringcentral subscribe --url https://voice.example.com
    realtime-voice ringcentral list
    realtime-voice ringcentral delete 1423e408-e25c-4421-8dd1-5f754e2f5648

``subscribe`` asks RingCentral (``RC_SERVER_URL``, JWT credentials ``RC_CLIENT_ID``,
``RC_CLIENT_SECRET``, ``RC_JWT_TOKEN``) to send inbound telephony session events to
``<url>/api/ringcentral/webhook`` with ``RC_WEBHOOK_VERIFICATION_TOKEN``; RingCentral
checks the address with its Validation-Token handshake before it agrees, so the server
must already be running there.

Exit status: 0 done, 1 RingCentral refused or could not be reached, 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["register", "webhook_address"]

_WEBHOOK_PATH = "/api/ringcentral/webhook"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def register(subparsers: Any) -> None:
    """Add the ``ringcentral`` sub-command with ``subscribe``, ``list`` and ``delete``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ringcentral",
        help="manage the RingCentral webhook subscription (subscribe, list, delete)",
        description="Create, list and delete the RingCentral webhook subscription that "
        "delivers telephony session events to this server.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    subscribe = actions.add_parser(
        "subscribe", help="subscribe the server's webhook to inbound call events"
    )
    subscribe.add_argument(
        "--url",
        required=True,
        help="the server's public https:// URL (the webhook path is added when absent)",
    )
    subscribe.add_argument(
        "--account-wide",
        action="store_true",
        help="every extension of the account instead of the authorised one",
    )
    subscribe.add_argument(
        "--expires-in",
        type=int,
        default=None,
        help="subscription lifetime in seconds (default: the longest RingCentral allows)",
    )
    subscribe.add_argument("--json", action="store_true", help="print the record as JSON")
    subscribe.set_defaults(func=_subscribe)

    listing = actions.add_parser("list", help="list this application's subscriptions")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(func=_list)

    delete = actions.add_parser("delete", help="delete a subscription")
    delete.add_argument("id", help="the subscription id (see list)")
    delete.set_defaults(func=_delete)


def webhook_address(url: str) -> str:
    """The webhook address for ``--url``: the URL itself when it has a path, else the URL
    with ``/api/ringcentral/webhook`` added.

    Raises:
        ValueError: not an https:// URL (plain http is accepted for a local address only).
    """
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if not parts.netloc or parts.scheme not in ("http", "https"):
        raise ValueError(f"--url must be an https:// URL, got {url!r}")
    if parts.scheme == "http" and host not in _LOCAL_HOSTS:
        raise ValueError("--url must use https:// (RingCentral only delivers over TLS)")
    if parts.path in ("", "/"):
        return url.strip().rstrip("/") + _WEBHOOK_PATH
    return url.strip()


def _subscribe(args: argparse.Namespace) -> int:
    from realtime_voice.ringcentral.subscriptions import (
        MAX_WEBHOOK_EXPIRES_IN,
        SubscriptionClient,
        inbound_telephony_filter,
    )

    try:
        address = webhook_address(args.url)
    except ValueError as exc:
        return _usage(str(exc))
    expires_in = args.expires_in if args.expires_in is not None else MAX_WEBHOOK_EXPIRES_IN
    if not 0 < expires_in <= MAX_WEBHOOK_EXPIRES_IN:
        return _usage(f"--expires-in must be 1..{MAX_WEBHOOK_EXPIRES_IN} seconds")

    async def action(subs: SubscriptionClient, token: str | None) -> int:
        if not token:
            return _usage(
                "set RC_WEBHOOK_VERIFICATION_TOKEN (the server checks it on every "
                "notification), e.g. to the output of: python -c "
                "'import secrets; print(secrets.token_hex(16))'"
            )
        record = await subs.create(
            address,
            token,
            event_filters=(inbound_telephony_filter(account_wide=args.account_wide),),
            expires_in=expires_in,
        )
        if args.json:
            print(json.dumps(_as_dict(record), indent=2))
        else:
            print(f"subscribed: {record.id}")
            print(f"  status:  {record.status}")
            print(f"  address: {record.address or address}")
            print(f"  events:  {', '.join(record.event_filters)}")
            print(f"  expires: {record.expiration_time}")
        return 0

    return _with_client(action)


def _list(args: argparse.Namespace) -> int:
    from realtime_voice.ringcentral.subscriptions import SubscriptionClient

    async def action(subs: SubscriptionClient, token: str | None) -> int:
        records = await subs.list_all()
        if args.json:
            print(json.dumps([_as_dict(r) for r in records], indent=2))
            return 0
        if not records:
            print("no subscriptions")
            return 0
        for r in records:
            note = f" ({r.blacklisted_reason})" if r.blacklisted_reason else ""
            print(f"{r.id}  {r.status}{note}  {r.transport_type}  {r.address}")
            print(f"    expires {r.expiration_time}; events: {', '.join(r.event_filters)}")
        return 0

    return _with_client(action)


def _delete(args: argparse.Namespace) -> int:
    from realtime_voice.ringcentral.subscriptions import SubscriptionClient

    async def action(subs: SubscriptionClient, token: str | None) -> int:
        await subs.delete(args.id)
        print(f"deleted: {args.id}")
        return 0

    return _with_client(action)


def _with_client(action: Callable[[Any, str | None], Awaitable[int]]) -> int:
    """Load settings, open a client, run ``action``; errors become one line and a code."""
    from realtime_voice.config import SettingsError, load_settings
    from realtime_voice.ringcentral.client import RingCentralClient
    from realtime_voice.ringcentral.errors import (
        RingCentralApiError,
        RingCentralAuthError,
        RingCentralConfigError,
        RingCentralError,
    )
    from realtime_voice.ringcentral.subscriptions import SubscriptionClient

    try:
        settings = load_settings()
    except SettingsError as exc:
        return _usage(f"configuration error: {exc}")

    async def main() -> int:
        async with RingCentralClient.from_settings(settings) as client:
            return await action(SubscriptionClient(client), settings.rc_webhook_verification_token)

    try:
        return asyncio.run(main())
    except RingCentralConfigError as exc:
        return _usage(str(exc))
    except RingCentralAuthError as exc:
        _fail(f"RingCentral refused the credentials: {exc.error}: {exc.description}")
    except RingCentralApiError as exc:
        _fail(f"RingCentral answered {exc.status} {exc.error_code}: {exc.message}")
    except RingCentralError as exc:
        _fail(f"RingCentral could not be reached at {settings.rc_server_url}: {exc}")
    return 1


def _as_dict(record: Any) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(record)
    data["event_filters"] = list(record.event_filters)
    return data


def _usage(message: str) -> int:
    print(f"realtime-voice ringcentral: {message}", file=sys.stderr)
    return 2


def _fail(message: str) -> None:
    print(f"realtime-voice ringcentral: {message}", file=sys.stderr)

"""Parsing RingCentral notifications into typed events (docs/RINGCENTRAL.md §1.4)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from webhooks.ringcentral_events import (
    NotificationError,
    OtherNotification,
    TelephonySessionEvent,
    parse_notification,
)

# The documentation's own sample (a Setup event), as RingCentral sends it.
DOC_SAMPLE = """{
  "uuid": "1823485288313944239",
  "event": "/restapi/v1.0/account/809646016/extension/809646016/telephony/sessions",
  "timestamp": "2020-06-14T19:27:18.390Z",
  "subscriptionId": "53300e7c-5e69-42bf-ab4d-179aabc6e869",
  "ownerId": "809646016",
  "body": {
    "sequence": 3,
    "sessionId": "425008160016",
    "telephonySessionId": "s-a6abd24ca6774373a8120a3390d3cbe8",
    "serverId": "10.13.22.28.TAM",
    "eventTime": "2020-06-14T19:27:18.340Z",
    "parties": [{
      "accountId": "809646016",
      "extensionId": "809646016",
      "id": "p-a6abd24ca6774373a8120a3390d3cbe8-2",
      "direction": "Inbound",
      "to":   { "phoneNumber": "+19043014558", "name": "TESTER Babji", "extensionId": "809646016" },
      "from": { "phoneNumber": "+14083388064" },
      "status": { "code": "Setup", "rcc": false },
      "park": {}, "missedCall": false, "standAlone": false, "muted": false
    }],
    "origin": { "type": "Call" }
  }
}"""


def test_documentation_sample_parses() -> None:
    event = parse_notification(DOC_SAMPLE.encode())
    assert isinstance(event, TelephonySessionEvent)
    assert event.uuid == "1823485288313944239"
    assert event.telephony_session_id == "s-a6abd24ca6774373a8120a3390d3cbe8"
    assert event.sequence == 3
    assert event.session_id == "425008160016"
    assert event.event_time == "2020-06-14T19:27:18.340Z"
    assert event.subscription_id == "53300e7c-5e69-42bf-ab4d-179aabc6e869"
    assert event.owner_id == "809646016"
    party = event.party
    assert party is not None
    assert party.party_id == "p-a6abd24ca6774373a8120a3390d3cbe8-2"
    assert party.direction == "Inbound"
    assert (party.from_number, party.from_name) == ("+14083388064", "")
    assert (party.to_number, party.to_name) == ("+19043014558", "TESTER Babji")
    assert party.extension_id == "809646016"
    assert event.status_code == "Setup"
    assert event.reason is None
    assert event.occurred_at == dt.datetime(2020, 6, 14, 19, 27, 18, 340000, tzinfo=dt.UTC)


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOC_SAMPLE)
    return doc


def test_disconnected_reason_and_missed_call() -> None:
    doc = _doc()
    doc["body"]["parties"][0]["status"] = {"code": "Disconnected", "reason": "CallFinished"}
    doc["body"]["parties"][0]["missedCall"] = True
    event = parse_notification(json.dumps(doc))
    assert isinstance(event, TelephonySessionEvent)
    assert (event.status_code, event.reason) == ("Disconnected", "CallFinished")
    assert event.party is not None and event.party.missed_call


def test_the_inbound_party_is_preferred() -> None:
    doc = _doc()
    outbound = dict(doc["body"]["parties"][0], id="p-out", direction="Outbound",
                    status={"code": "Answered"})
    doc["body"]["parties"].insert(0, outbound)
    event = parse_notification(json.dumps(doc))
    assert isinstance(event, TelephonySessionEvent)
    assert len(event.parties) == 2
    assert event.party is not None and event.party.party_id.endswith("-2")
    assert event.status_code == "Setup"


def test_no_parties_has_no_party() -> None:
    doc = _doc()
    doc["body"]["parties"] = []
    event = parse_notification(json.dumps(doc))
    assert isinstance(event, TelephonySessionEvent)
    assert event.party is None
    assert event.status_code == ""
    assert event.reason is None


def test_unknown_status_codes_and_extra_fields_are_kept_or_ignored() -> None:
    doc = _doc()
    doc["body"]["parties"][0]["status"] = {"code": "Tds", "peerId": {"x": 1}}
    doc["body"]["newField"] = {"anything": [1, 2]}
    event = parse_notification(json.dumps(doc))
    assert isinstance(event, TelephonySessionEvent)
    assert event.status_code == "Tds"


def test_filter_query_does_not_hide_the_event_type() -> None:
    doc = _doc()
    doc["event"] += "?direction=Inbound&statusCode=Answered"
    assert isinstance(parse_notification(json.dumps(doc)), TelephonySessionEvent)


def test_other_event_types_are_not_parsed_further() -> None:
    event = "/restapi/v1.0/account/~/extension/~/message-store"
    note = parse_notification(json.dumps({"uuid": "42", "event": event, "body": "anything"}))
    assert note == OtherNotification(uuid="42", event=event)


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b"{", "", "malformed JSON"),
        (b"\xff", "", "UTF-8"),
        (b"[]", "", "JSON object"),
        (b'{"event": "/telephony/sessions"}', "uuid", "missing field uuid"),
        (b'{"uuid": "1"}', "event", "missing field event"),
        (b'{"uuid": "1", "event": 5}', "event", "event must be a string"),
        (b'{"uuid": "  ", "event": "e"}', "uuid", "must not be empty"),
        (("{\"uuid\": \"" + "9" * 300 + "\", \"event\": \"e\"}").encode(), "uuid", "over 256"),
    ],
)
def test_errors_name_the_field(raw: bytes, field: str, words: str) -> None:
    with pytest.raises(NotificationError) as info:
        parse_notification(raw)
    assert info.value.field == field
    assert words in info.value.message
    assert isinstance(info.value, ValueError)


def test_a_sequence_that_is_a_float_is_refused() -> None:
    doc = _doc()
    doc["body"]["sequence"] = 3.0
    with pytest.raises(NotificationError) as info:
        parse_notification(json.dumps(doc))
    assert info.value.field == "body.sequence"


def test_occurred_at_falls_back_to_the_timestamp_and_tolerates_junk() -> None:
    doc = _doc()
    doc["body"]["eventTime"] = "yesterday"
    event = parse_notification(json.dumps(doc))
    assert isinstance(event, TelephonySessionEvent)
    assert event.occurred_at == dt.datetime(2020, 6, 14, 19, 27, 18, 390000, tzinfo=dt.UTC)
    doc["timestamp"] = ""
    event = parse_notification(json.dumps(doc))
    assert isinstance(event, TelephonySessionEvent)
    assert event.occurred_at is None

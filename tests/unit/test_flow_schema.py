"""Loading and validating flow files: a broken file names the file, the key and the problem."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_schema import FlowError, load_flow, load_flows, select_flow

SHIPPED = Path(__file__).parents[2] / "ai_pipeline" / "flows"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def shipped() -> dict[str, Doc]:
    return {p.stem: json.loads(p.read_text()) for p in SHIPPED.glob("*.json")}


def test_the_four_shipped_flows_load() -> None:
    flows = load_flows()
    assert sorted(flows) == ["persona", "real_estate", "restaurant", "service_appointments"]
    for name, flow in flows.items():
        assert flow.name == name
        assert flow.start in flow.stages
        assert any(stage.end for stage in flow.stages.values())
        assert "escalated" in flow.outcomes
    assert flows["real_estate"].outcomes >= {"qualified", "follow_up", "not_interested"}
    assert flows["service_appointments"].outcomes >= {"booked", "info"}
    assert flows["restaurant"].numbers == ("+15555550123",)


def test_a_directory_of_flows_loads(tmp_path: Path) -> None:
    shutil.copy(SHIPPED / "restaurant.json", tmp_path)
    assert list(load_flows(tmp_path)) == ["restaurant"]


def broken(
    tmp_path: Path, shipped: dict[str, Doc], name: str, change: Callable[[Doc], object]
) -> FlowError:
    doc = copy.deepcopy(shipped[name])
    change(doc)
    (tmp_path / f"{name}.json").write_text(json.dumps(doc, indent=2))
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    error = caught.value
    assert str(error) == f"{error.file}: {error.path}: {error.problem}"
    return error


def _set(path: str, value: object) -> Callable[[Doc], object]:
    *parents, last = path.split("/")

    def change(doc: Doc) -> None:
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("name", "change", "path", "problem"),
    [
        (
            "real_estate",
            _set("stages/intro/promt", "Hi"),
            "stages.intro.promt",
            "unknown key (did you mean 'prompt'?)",
        ),
        (
            "real_estate",
            _set("stages/intro/on/0/goto", "nowhere"),
            "stages.intro.on[0].goto",
            "unknown stage 'nowhere'",
        ),
        (
            "real_estate",
            _set("stages/intro/on/3/goto", "closing"),
            "stages.intro.on[3].goto",
            "stage 'closing' is not in this stage's transitions (dead_end, discovery, "
            "follow_up_scheduled, intro, objection_handling, permission)",
        ),
        (
            "real_estate",
            _set("intents/site_visit/0", "site (visit"),
            "intents.site_visit[0]",
            "pattern does not compile: missing ), unterminated subpattern at position 5",
        ),
        (
            "real_estate",
            _set("stages/dead_end/prompt", "Bye {lead_nam}!"),
            "stages.dead_end.prompt",
            "template field {lead_nam} is not a parameter, slot or built-in (call_type, "
            "caller_number, customer_first_name, customer_name, today)",
        ),
        (
            "real_estate",
            _set("stages/dead_end/prompt", "Bye {budget:euro}!"),
            "stages.dead_end.prompt",
            "unknown format {budget:euro} (one of date, digits, inr, money, relative, time, "
            "weekday)",
        ),
        (
            "real_estate",
            _set("slots/purpose/type", "colour"),
            "slots.purpose.type",
            "unknown slot type 'colour' (one of boolean, date, enum, money, name, number, "
            "phone, text, time)",
        ),
        (
            "restaurant",
            _set("stages/start/on/0/intent", "bookign"),
            "stages.start.on[0].intent",
            "unknown intent 'bookign'",
        ),
        (
            "restaurant",
            _set("stages/booking/collect", ["party_size", "guests"]),
            "stages.booking.collect",
            "unknown slot 'guests'",
        ),
        (
            "restaurant",
            _set("slots/time/earliest", "noonish"),
            "slots.time.earliest",
            "must be a time as HH:MM, not 'noonish'",
        ),
        (
            "restaurant",
            _set("numbers", "+15555550123"),
            "numbers",
            "must be a list of strings, not a string",
        ),
        (
            "restaurant",
            _set("actions/book_table/outcome", "sold"),
            "actions.book_table.outcome",
            "unknown outcome 'sold'",
        ),
        (
            "service_appointments",
            _set("timezone", "Mars/Olympus"),
            "timezone",
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            "service_appointments",
            _set("escalation/say", {"angry": "Sorry."}),
            "escalation.say.default",
            "is required: the handoff line",
        ),
        (
            "real_estate",
            _set("stages/closing/on/1/set", {"visit_date": "someday"}),
            "stages.closing.on[1].set.visit_date",
            "'someday' is not a date value for slot 'visit_date'",
        ),
        (
            "persona",
            _set("name", "assistant"),
            "name",
            "must match the file name ('persona'), not 'assistant'",
        ),
        (
            "persona",
            _set("stages/chat/end", "yes"),
            "stages.chat.end",
            "must be true or false, not a string",
        ),
    ],
)
def test_a_broken_file_names_file_key_and_problem(
    tmp_path: Path,
    shipped: dict[str, Doc],
    name: str,
    change: Callable[[Doc], object],
    path: str,
    problem: str,
) -> None:
    error = broken(tmp_path, shipped, name, change)
    assert (error.file, error.path, error.problem) == (f"{name}.json", path, problem)


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = (
        (SHIPPED / "restaurant.json")
        .read_text()
        .replace('"start": "start",', '"start": "start"', 1)
    )
    (tmp_path / "restaurant.json").write_text(text)
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    error = caught.value
    assert error.file == "restaurant.json"
    line = text[: text.index('"start": "start"')].count("\n") + 2
    assert error.path.startswith(f"line {line} column ")
    assert error.problem == "Expecting ',' delimiter"


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = (
        (SHIPPED / "persona.json")
        .read_text()
        .replace('"start": "chat",', '"start": "chat",\n  "start": "done",', 1)
    )
    (tmp_path / "persona.json").write_text(text)
    with pytest.raises(FlowError, match=r"^persona\.json: duplicate key 'start'$"):
        load_flows(tmp_path)


def test_two_flows_may_not_claim_one_number(tmp_path: Path, shipped: dict[str, Doc]) -> None:
    shutil.copy(SHIPPED / "restaurant.json", tmp_path)
    doc = copy.deepcopy(shipped["service_appointments"])
    doc["numbers"] = ["+1 (555) 555-0123"]
    (tmp_path / "service_appointments.json").write_text(json.dumps(doc))
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert str(caught.value) == (
        "service_appointments.json: numbers[0]: +1 (555) 555-0123 already selects flow 'restaurant'"
    )


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="no flow files"):
        load_flows(tmp_path)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match=r"^nothing\.json: cannot read"):
        load_flow(tmp_path / "nothing.json")


def test_select_flow_order() -> None:
    flows: dict[str, Flow] = load_flows()
    assert select_flow(flows, {"flow": "persona"}, "+15555550123", "real_estate").name == "persona"
    assert select_flow(flows, {}, "15555550123", "real_estate").name == "restaurant"
    assert select_flow(flows, {}, "+15555550142", "real_estate").name == "service_appointments"
    assert select_flow(flows, {"flow": "nope"}, "+19999999999", "real_estate").name == "real_estate"
    with pytest.raises(KeyError):
        select_flow(flows, {}, "", "missing")

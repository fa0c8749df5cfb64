"""Loading, validating and choosing conversation flows (JSON files, one flow per file).

`load_flows` reads every ``*.json`` of a directory (by default the four shipped with
the package) and checks everything before the first call: unknown or misspelt keys,
wrong types, patterns that do not compile, stages, slots, intents, actions and
outcomes that do not exist, transitions a stage does not allow, template fields with
no value and unknown format specs. A problem raises `FlowError` naming the file, the
key path (``stages.intro.on[0].goto``) or JSON line, and the problem, so a bad file
stops start-up with one clear line.

`select_flow` picks the flow for a call: the ``flow`` custom parameter, else the
number dialled, else the default.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ai_pipeline.customers import phone_key
from ai_pipeline.flow_checks import check_flow
from ai_pipeline.flow_model import (
    CALL_TYPES,
    SLOT_TYPES,
    Action,
    EnumValue,
    Escalation,
    Flow,
    Objection,
    Rule,
    SlotSpec,
    SlotType,
    Stage,
    Template,
)
from ai_pipeline.flow_reader import (
    FlowError,
    Reader,
    check_name,
    compile_pattern,
    join_path,
    read_intent,
    read_intents,
    read_template,
    read_time,
)
from ai_pipeline.nlp.intent import COMMON_INTENTS, DEFAULT_MIN_CONFIDENCE, Intent, IntentSet
from ai_pipeline.responder import TransferTarget
from ai_pipeline.slot_values import parse_slot_value

__all__ = ["DEFAULT_TEMPLATES", "FlowError", "load_flow", "load_flows", "parse_flow", "select_flow"]

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES: Final[dict[str, Template]] = {
    "fallback": ("Sorry, I didn't quite catch that. Could you say it another way?",),
    "llm_failure": ("Sorry, could you say that again?",),
    "silence": ("Are you still there?",),
    "silence_goodbye": ("I haven't heard anything, so I'll end the call here. Goodbye!",),
}
"""Shared lines a flow gets unless its ``templates`` replaces them."""

_OBJECTION_PRIORITY: Final = 4
# fmt: off
_WEEKDAY_NAMES: Final = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)
# fmt: on
_DTMF_DIGIT: Final = re.compile(r"^[0-9*#A-D]$")
_SAMPLE_TODAY: Final = dt.date(2025, 1, 1)


_SLOT_KEYS: Final = (
    "type", "prompt", "invalid", "description", "values", "min", "max", "currency", "not_past",
    "max_days_ahead", "weekdays", "earliest", "latest", "assume", "parts_of_day", "entity",
    "max_words", "default", "anytime",
)  # fmt: skip


def _slot(file: str, path: str, name: str, data: object) -> SlotSpec:
    check_name(file, path, name)
    obj = Reader(file, path, data, _SLOT_KEYS)
    kind = obj.text("type")
    if kind not in SLOT_TYPES:
        raise obj.error(
            "type", f"unknown slot type {kind!r} (one of {', '.join(sorted(SLOT_TYPES))})"
        )
    values: list[EnumValue] = []
    if kind == "enum":
        raw_values = obj.mapping("values")
        if not raw_values:
            raise obj.error("values", "an enum slot needs values")
        for key, spec in raw_values.items():
            where = join_path(obj.at("values"), key)
            if isinstance(spec, list):
                spec = {"match": spec}
            entry = Reader(file, where, spec, ("say", "match"))
            matches = entry.str_list("match") or (key.replace("_", " "),)
            patterns = tuple(
                compile_pattern(file, join_path(entry.at("match"), i), m)
                for i, m in enumerate(matches)
            )
            values.append(EnumValue(key, entry.text("say", key.replace("_", " ")), patterns))
    elif obj.has("values"):
        raise obj.error("values", "only enum slots have values")
    weekdays = None
    if obj.has("weekdays"):
        days = obj.str_list("weekdays")
        for index, day in enumerate(days):
            if day.lower() not in _WEEKDAY_NAMES:
                raise FlowError(
                    file, join_path(obj.at("weekdays"), index), f"not a weekday: {day!r}"
                )
        weekdays = frozenset(_WEEKDAY_NAMES.index(day.lower()) for day in days)
    parts: dict[str, dt.time] = {}
    parts_obj = obj.obj("parts_of_day", ("morning", "afternoon", "evening", "night"))
    if parts_obj is not None:
        for part in parts_obj.data:
            value = read_time(parts_obj, part)
            assert value is not None
            parts[part] = value
    assume = obj.opt_text("assume")
    if assume not in (None, "am", "pm"):
        raise obj.error("assume", "must be am or pm")
    entity = obj.opt_text("entity")
    if entity not in (None, "party_size"):
        raise obj.error("entity", "the only entity is party_size")
    prompt = obj.template("prompt")
    if not prompt:
        raise obj.error("prompt", "is required: the question that asks for the slot")
    return SlotSpec(
        name=name,
        type=cast(SlotType, kind),
        prompt=prompt,
        invalid=obj.template("invalid"),
        description=obj.text("description", ""),
        values=tuple(values),
        minimum=obj.number("min"),
        maximum=obj.number("max"),
        currency=obj.opt_text("currency"),
        not_past=obj.flag("not_past", True),
        max_days_ahead=obj.whole("max_days_ahead", None),
        weekdays=weekdays,
        earliest=read_time(obj, "earliest"),
        latest=read_time(obj, "latest"),
        assume=cast(Any, assume),
        parts_of_day=parts,
        entity=entity,
        max_words=obj.whole("max_words", 6, minimum=1) or 6,
        default=obj.opt_text("default"),
        anytime=obj.flag("anytime", False),
    )


_RULE_KEYS: Final = (
    "intent", "complete", "say", "goto", "set", "clear", "do", "outcome", "end", "transfer",
    "prompt", "resume",
)  # fmt: skip


def _rule(file: str, path: str, data: object) -> Rule:
    obj = Reader(file, path, data, _RULE_KEYS)
    intents = frozenset(obj.names("intent"))
    complete = obj.flag("complete", False)
    if not intents and not complete:
        raise obj.error("", "a rule needs an intent or complete: true")
    sets = obj.mapping("set")
    for key, value in sets.items():
        if not isinstance(value, str | int | float | bool):
            raise obj.error(f"set.{key}", "must be a string, number or boolean")
    return Rule(
        intents=intents,
        complete=complete,
        say=obj.template("say"),
        goto=obj.opt_text("goto"),
        set={key: str(value) for key, value in sets.items()},
        clear=obj.str_list("clear"),
        do=obj.opt_text("do"),
        outcome=obj.opt_text("outcome"),
        end=obj.flag("end", False),
        transfer=obj.flag("transfer", False),
        prompt=obj.flag("prompt", True),
        resume=obj.flag("resume", False),
    )


def _rules(file: str, path: str, data: object) -> tuple[Rule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise FlowError(file, path, "must be a list of rules")
    return tuple(_rule(file, join_path(path, i), item) for i, item in enumerate(data))


def _dtmf(obj: Reader, key: str) -> dict[str, str]:
    mapping = obj.mapping(key)
    for digit, intent in mapping.items():
        if not _DTMF_DIGIT.match(digit):
            raise obj.error(f"{key}.{digit}", "not a keypad digit (0-9, *, #, A-D)")
        if not isinstance(intent, str):
            raise obj.error(f"{key}.{digit}", "must name an intent")
    return dict(mapping)


_TOP_KEYS: Final = (
    "name", "description", "numbers", "timezone", "parameters", "customer_lookup", "transfer",
    "persona", "instructions", "min_confidence", "greeting", "start", "slots", "intents",
    "stages", "objections", "global", "escalation", "actions", "dtmf", "outcomes",
    "default_outcome", "templates",
)  # fmt: skip
_OBJECTION_KEYS: Final = ("patterns", "say", "goto", "set", "resume", "priority")
_ESCALATION_KEYS: Final = (
    "intents", "angry", "anger_turns", "abusive", "max_misunderstandings", "say",
)  # fmt: skip
_ACTION_KEYS: Final = ("description", "slots", "optional", "outcome", "goto", "say", "end")
_STAGE_KEYS: Final = (
    "goal", "prompt", "transitions", "intents", "collect", "amend", "on", "fallback", "ack",
    "dtmf", "end", "outcome", "answer_from_documents", "llm",
)  # fmt: skip


def _read_transfer(top: Reader) -> TransferTarget | None:
    obj = top.obj("transfer", ("phone_number", "extension_number"))
    if obj is None:
        return None
    try:
        return TransferTarget(
            phone_number=obj.opt_text("phone_number"),
            extension_number=obj.opt_text("extension_number"),
        )
    except ValueError as exc:
        raise obj.error("", str(exc)) from None


def _read_objections(top: Reader, min_confidence: float) -> tuple[dict[str, Objection], IntentSet]:
    objections: dict[str, Objection] = {}
    intents: list[Intent] = []
    for key, spec in top.mapping("objections").items():
        obj = Reader(top.file, top.at(f"objections.{key}"), spec, _OBJECTION_KEYS)
        check_name(top.file, obj.path, key)
        priority = obj.whole("priority", _OBJECTION_PRIORITY, minimum=-10) or 0
        patterns = obj.data.get("patterns")
        intents.append(read_intent(top.file, obj.at("patterns"), key, patterns, priority))
        say = obj.template("say")
        if not say:
            raise obj.error("say", "is required: the answer to the objection")
        sets = {k: str(v) for k, v in obj.mapping("set").items()}
        objections[key] = Objection(key, say, obj.opt_text("goto"), sets, obj.flag("resume", False))
    return objections, IntentSet(intents, min_confidence=min_confidence)


def _read_stages(top: Reader, flow_intents: IntentSet) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    for key, spec in top.mapping("stages").items():
        obj = Reader(top.file, top.at(f"stages.{key}"), spec, _STAGE_KEYS)
        check_name(top.file, obj.path, key)
        local = read_intents(
            top.file, obj.at("intents"), obj.mapping("intents"), flow_intents.min_confidence
        )
        stages[key] = Stage(
            name=key,
            goal=obj.text("goal", ""),
            prompt=obj.template("prompt"),
            transitions=frozenset(obj.str_list("transitions")),
            collect=obj.str_list("collect"),
            amend=obj.str_list("amend"),
            rules=_rules(top.file, obj.at("on"), obj.data.get("on")),
            intents=flow_intents | local,
            fallback=obj.template("fallback"),
            ack=obj.template("ack"),
            dtmf=_dtmf(obj, "dtmf"),
            end=obj.flag("end", False),
            outcome=obj.opt_text("outcome"),
            answer_from_documents=obj.flag("answer_from_documents", False),
            llm=obj.flag("llm", True),
        )
    if not stages:
        raise top.error("stages", "a flow needs at least one stage")
    return stages


def _read_escalation(top: Reader) -> Escalation:
    obj = top.obj("escalation", _ESCALATION_KEYS)
    if obj is None:
        raise top.error("escalation", "is required (at least its say.default handoff line)")
    say_data = obj.mapping("say")
    if "default" not in say_data:
        raise obj.error("say.default", "is required: the handoff line")
    return Escalation(
        say={
            reason: read_template(top.file, obj.at(f"say.{reason}"), value)
            for reason, value in say_data.items()
        },
        intents=frozenset(obj.str_list("intents") or ("human",)),
        angry=obj.flag("angry", True),
        anger_turns=obj.whole("anger_turns", 1, minimum=1) or 1,
        abusive=obj.flag("abusive", True),
        max_misunderstandings=obj.whole("max_misunderstandings", 3, minimum=1) or 3,
    )


def _read_actions(top: Reader) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    for key, spec in top.mapping("actions").items():
        obj = Reader(top.file, top.at(f"actions.{key}"), spec, _ACTION_KEYS)
        check_name(top.file, obj.path, key)
        actions[key] = Action(
            name=key,
            description=obj.text("description"),
            slots=obj.str_list("slots"),
            optional=obj.str_list("optional"),
            outcome=obj.opt_text("outcome"),
            goto=obj.opt_text("goto"),
            say=obj.template("say"),
            end=obj.flag("end", False),
        )
    return actions


def _read_templates(top: Reader) -> dict[str, Template]:
    templates = dict(DEFAULT_TEMPLATES)
    for key, value in top.mapping("templates").items():
        if key not in DEFAULT_TEMPLATES:
            known = ", ".join(DEFAULT_TEMPLATES)
            raise top.error(f"templates.{key}", f"unknown template (one of {known})")
        templates[key] = read_template(top.file, top.at(f"templates.{key}"), value)
    return templates


def _read_greeting(top: Reader) -> dict[str, Template]:
    raw = top.data.get("greeting")
    if raw is None:
        raise top.error("greeting", "is required")
    if not isinstance(raw, dict):
        return {"default": read_template(top.file, "greeting", raw)}
    obj = Reader(top.file, "greeting", raw, ("default", *CALL_TYPES))
    greeting = {key: obj.template(key) for key in obj.data}
    if "default" not in greeting:
        raise obj.error("default", "is required")
    return greeting


def _read_parameters(top: Reader) -> dict[str, str]:
    parameters = top.mapping("parameters")
    for key, value in parameters.items():
        check_name(top.file, top.at(f"parameters.{key}"), key)
        if not isinstance(value, str):
            raise top.error(f"parameters.{key}", "a parameter's default must be a string")
    return dict(parameters)


def _read_timezone(top: Reader) -> ZoneInfo | None:
    if not top.has("timezone"):
        return None
    name = top.text("timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise top.error("timezone", f"unknown time zone {name!r}") from None


def parse_flow(data: object, file: str) -> Flow:
    """Build and check a flow from parsed JSON.

    Args:
        data: the parsed document.
        file: the file name for error messages (its stem must equal the flow's name).

    Raises:
        FlowError: the flow is invalid.
    """
    top = Reader(file, "", data, _TOP_KEYS)
    name = top.text("name")
    stem = Path(file).stem
    if name != stem:
        raise top.error("name", f"must match the file name ({stem!r}), not {name!r}")
    min_confidence = float(top.number("min_confidence") or Decimal(str(DEFAULT_MIN_CONFIDENCE)))
    if not 0 < min_confidence <= 1:
        raise top.error("min_confidence", "must be above 0 and at most 1")
    slots = {
        key: _slot(file, top.at(f"slots.{key}"), key, spec)
        for key, spec in top.mapping("slots").items()
    }
    own = read_intents(file, "intents", top.mapping("intents"), min_confidence)
    objections, objection_intents = _read_objections(top, min_confidence)
    flow_intents = COMMON_INTENTS | own | objection_intents
    flow = Flow(
        name=name,
        description=top.text("description"),
        source=file,
        start=top.text("start"),
        greeting=_read_greeting(top),
        stages=_read_stages(top, flow_intents),
        escalation=_read_escalation(top),
        templates=_read_templates(top),
        intents=flow_intents,
        numbers=top.str_list("numbers"),
        timezone=_read_timezone(top),
        parameters=_read_parameters(top),
        customer_lookup=top.flag("customer_lookup", False),
        transfer=_read_transfer(top),
        persona=top.text("persona", ""),
        instructions=top.str_list("instructions"),
        slots=slots,
        objections=objections,
        global_rules=_rules(file, "global", top.data.get("global")),
        actions=_read_actions(top),
        dtmf=_dtmf(top, "dtmf"),
        outcomes=frozenset(top.str_list("outcomes")) | {"escalated"},
        default_outcome=top.opt_text("default_outcome"),
    )
    check_flow(flow, lambda path, problem: FlowError(file, path, problem))
    for path, spec_name, literal in _set_literals(flow):
        spec = flow.slots.get(spec_name)
        if spec is not None and parse_slot_value(spec, literal, _SAMPLE_TODAY) is None:
            problem = f"{literal!r} is not a {spec.type} value for slot {spec_name!r}"
            raise FlowError(file, path, problem)
    return flow


def _set_literals(flow: Flow) -> Iterable[tuple[str, str, str]]:
    for stage in flow.stages.values():
        for index, rule in enumerate(stage.rules):
            for slot, literal in rule.set.items():
                yield f"stages.{stage.name}.on[{index}].set.{slot}", slot, literal
    for index, rule in enumerate(flow.global_rules):
        for slot, literal in rule.set.items():
            yield f"global[{index}].set.{slot}", slot, literal
    for objection in flow.objections.values():
        for slot, literal in objection.set.items():
            yield f"objections.{objection.name}.set.{slot}", slot, literal


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_flow(path: str | os.PathLike[str]) -> Flow:
    """Load and check one flow file.

    Raises:
        FlowError: the file cannot be read, is not JSON, or is not a valid flow.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(file.name, "", f"cannot read: {exc.strerror or exc}") from None
    return _parse_text(text, file.name)


def _parse_text(text: str, file: str) -> Flow:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise FlowError(file, f"line {exc.lineno} column {exc.colno}", exc.msg) from None
    except ValueError as exc:
        raise FlowError(file, "", str(exc)) from None
    return parse_flow(data, file)


def load_flows(directory: str | os.PathLike[str] | None = None) -> dict[str, Flow]:
    """Load and check every ``*.json`` flow of a directory.

    Args:
        directory: where the flow files are; None for the flows shipped with the
            package (real_estate, service_appointments, restaurant, persona).

    Returns:
        The flows by name.

    Raises:
        FlowError: a file is invalid, two flows claim the same number, or there are
            no flow files.
    """
    sources: list[tuple[str, str]] = []
    if directory is None:
        package = importlib.resources.files("ai_pipeline.flows")
        for entry in sorted(package.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                sources.append((entry.name, entry.read_text(encoding="utf-8")))
        where = "ai_pipeline/flows"
    else:
        folder = Path(directory)
        if not folder.is_dir():
            raise FlowError(str(folder), "", "not a directory")
        for file in sorted(folder.glob("*.json")):
            try:
                sources.append((file.name, file.read_text(encoding="utf-8")))
            except OSError as exc:
                raise FlowError(file.name, "", f"cannot read: {exc.strerror or exc}") from None
        where = str(folder)
    if not sources:
        raise FlowError(where, "", "no flow files (*.json)")
    flows: dict[str, Flow] = {}
    owners: dict[str, str] = {}
    for name, text in sources:
        flow = _parse_text(text, name)
        for index, number in enumerate(flow.numbers):
            key = phone_key(number)
            if key in owners:
                raise FlowError(
                    name, f"numbers[{index}]", f"{number} already selects flow {owners[key]!r}"
                )
            owners[key] = flow.name
        flows[flow.name] = flow
    return flows


def select_flow(
    flows: Mapping[str, Flow],
    custom_parameters: Mapping[str, str],
    to_number: str,
    default: str,
) -> Flow:
    """The flow for a call: custom parameter ``flow``, else the number dialled, else the default.

    An unknown ``flow`` parameter is logged and ignored rather than failing the call.

    Args:
        flows: the loaded flows.
        custom_parameters: the call's custom parameters.
        to_number: the number the caller dialled.
        default: the default flow's name (must be in ``flows``).

    Raises:
        KeyError: the default flow does not exist.
    """
    requested = custom_parameters.get("flow", "").strip()
    if requested:
        if requested in flows:
            return flows[requested]
        log.warning("unknown flow %r requested; choosing by number", requested)
    key = phone_key(to_number)
    if len(key) >= 7:
        for flow in flows.values():
            if any(phone_key(number) == key for number in flow.numbers):
                return flow
    return flows[default]

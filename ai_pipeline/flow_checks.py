"""Cross-reference checks of a loaded flow: every name it uses must exist and fit.

Split from `flow_schema` (which reads the JSON) so each stays readable. Every problem
is reported through the ``error`` factory with the key path it was found at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ai_pipeline.flow_model import BUILTIN_FIELDS, PSEUDO_INTENTS, Flow, Rule, Template
from ai_pipeline.templates import FORMAT_SPECS, template_fields

__all__ = ["check_flow"]

ErrorFactory = Callable[[str, str], Exception]


def _templates(flow: Flow) -> Iterator[tuple[str, Template]]:
    """Every template of the flow with its key path."""
    for key, template in flow.greeting.items():
        yield f"greeting.{key}", template
    for key, template in flow.templates.items():
        yield f"templates.{key}", template
    if flow.persona:
        yield "persona", (flow.persona,)
    for index, line in enumerate(flow.instructions):
        yield f"instructions[{index}]", (line,)
    for name, slot in flow.slots.items():
        yield f"slots.{name}.prompt", slot.prompt
        yield f"slots.{name}.invalid", slot.invalid
    for name, stage in flow.stages.items():
        yield f"stages.{name}.prompt", stage.prompt
        yield f"stages.{name}.fallback", stage.fallback
        yield f"stages.{name}.ack", stage.ack
        for index, rule in enumerate(stage.rules):
            yield f"stages.{name}.on[{index}].say", rule.say
    for index, rule in enumerate(flow.global_rules):
        yield f"global[{index}].say", rule.say
    for name, objection in flow.objections.items():
        yield f"objections.{name}.say", objection.say
    for reason, template in flow.escalation.say.items():
        yield f"escalation.say.{reason}", template
    for name, action in flow.actions.items():
        yield f"actions.{name}.say", action.say


def _check_templates(flow: Flow, error: ErrorFactory) -> None:
    known = set(flow.parameters) | set(flow.slots) | BUILTIN_FIELDS
    for path, template in _templates(flow):
        for index, variant in enumerate(template):
            where = path if len(template) == 1 else f"{path}[{index}]"
            for name, spec in template_fields(variant):
                if name not in known:
                    raise error(
                        where,
                        f"template field {{{name}}} is not a parameter, slot or built-in "
                        f"({', '.join(sorted(BUILTIN_FIELDS))})",
                    )
                if spec not in FORMAT_SPECS:
                    raise error(
                        where,
                        f"unknown format {{{name}:{spec}}} (one of "
                        f"{', '.join(sorted(s for s in FORMAT_SPECS if s))})",
                    )


def _check_slots(flow: Flow, error: ErrorFactory, path: str, names: Iterable[str]) -> None:
    for name in names:
        if name not in flow.slots:
            raise error(path, f"unknown slot {name!r}")


def _check_rule(
    flow: Flow,
    error: ErrorFactory,
    path: str,
    rule: Rule,
    intents: frozenset[str],
    transitions: frozenset[str] | None,
    collects: bool,
) -> None:
    for intent in rule.intents:
        if intent not in intents and intent not in PSEUDO_INTENTS:
            raise error(f"{path}.intent", f"unknown intent {intent!r}")
    if rule.complete and not collects:
        raise error(f"{path}.complete", "only a stage that collects slots completes")
    if rule.goto is not None:
        if rule.goto not in flow.stages:
            raise error(f"{path}.goto", f"unknown stage {rule.goto!r}")
        if transitions is not None and rule.goto not in transitions:
            raise error(
                f"{path}.goto",
                f"stage {rule.goto!r} is not in this stage's transitions "
                f"({', '.join(sorted(transitions)) or 'none'})",
            )
    _check_slots(flow, error, f"{path}.set", rule.set)
    _check_slots(flow, error, f"{path}.clear", rule.clear)
    if rule.do is not None and rule.do not in flow.actions:
        raise error(f"{path}.do", f"unknown action {rule.do!r}")
    if rule.outcome is not None and rule.outcome not in flow.outcomes:
        raise error(f"{path}.outcome", f"unknown outcome {rule.outcome!r}")
    if rule.end and rule.transfer:
        raise error(path, "a rule cannot both end and transfer the call")


def check_flow(flow: Flow, error: ErrorFactory) -> None:
    """Check every cross-reference in ``flow``.

    Args:
        flow: the flow as read.
        error: makes the exception to raise from (key path, problem).

    Raises:
        Exception: whatever ``error`` returns, for the first problem found.
    """
    if flow.start not in flow.stages:
        raise error("start", f"unknown stage {flow.start!r}")
    if flow.default_outcome is not None and flow.default_outcome not in flow.outcomes:
        raise error("default_outcome", f"unknown outcome {flow.default_outcome!r}")
    flow_intents = flow.intents.names
    for digit, intent in flow.dtmf.items():
        if intent not in flow_intents and intent not in PSEUDO_INTENTS:
            raise error(f"dtmf.{digit}", f"unknown intent {intent!r}")
    for name, stage in flow.stages.items():
        base = f"stages.{name}"
        for target in stage.transitions:
            if target not in flow.stages:
                raise error(f"{base}.transitions", f"unknown stage {target!r}")
        _check_slots(flow, error, f"{base}.collect", stage.collect)
        _check_slots(flow, error, f"{base}.amend", stage.amend)
        if stage.outcome is not None and stage.outcome not in flow.outcomes:
            raise error(f"{base}.outcome", f"unknown outcome {stage.outcome!r}")
        if stage.end and stage.rules:
            raise error(f"{base}.on", "an end stage has no rules: the call is over")
        stage_intents = stage.intents.names
        allowed = stage.transitions | {name}
        for index, rule in enumerate(stage.rules):
            _check_rule(
                flow,
                error,
                f"{base}.on[{index}]",
                rule,
                stage_intents,
                allowed,
                bool(stage.collect),
            )
        for digit, intent in stage.dtmf.items():
            if intent not in stage_intents and intent not in PSEUDO_INTENTS:
                raise error(f"{base}.dtmf.{digit}", f"unknown intent {intent!r}")
    for index, rule in enumerate(flow.global_rules):
        _check_rule(flow, error, f"global[{index}]", rule, flow_intents, None, False)
    for name, objection in flow.objections.items():
        if objection.goto is not None and objection.goto not in flow.stages:
            raise error(f"objections.{name}.goto", f"unknown stage {objection.goto!r}")
        _check_slots(flow, error, f"objections.{name}.set", objection.set)
    for intent in flow.escalation.intents:
        if intent not in flow_intents:
            raise error("escalation.intents", f"unknown intent {intent!r}")
    for name, action in flow.actions.items():
        _check_slots(flow, error, f"actions.{name}.slots", action.slots)
        _check_slots(flow, error, f"actions.{name}.optional", action.optional)
        if action.goto is not None and action.goto not in flow.stages:
            raise error(f"actions.{name}.goto", f"unknown stage {action.goto!r}")
        if action.outcome is not None and action.outcome not in flow.outcomes:
            raise error(f"actions.{name}.outcome", f"unknown outcome {action.outcome!r}")
    _check_templates(flow, error)

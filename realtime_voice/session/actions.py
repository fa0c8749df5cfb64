"""The responder's call actions, carried out on the leg: transfer to a human, hang up.

Both run only after the caller heard the words before them (the `Speaker` waits for
the mark); the call record says what happened and the metrics count transfers.
"""

from __future__ import annotations

import logging

from ai_pipeline.responder import HangupAction, TransferAction
from realtime_voice.legs.base import CallLeg
from realtime_voice.session.services import CallServices

__all__ = ["carry_out", "end_reason_of"]

log = logging.getLogger(__name__)


def end_reason_of(action: TransferAction | HangupAction) -> str:
    """The call's end reason after ``action``: ``transferred``, or the hang-up's reason."""
    return "transferred" if isinstance(action, TransferAction) else action.reason


async def carry_out(
    action: TransferAction | HangupAction, leg: CallLeg, call: CallServices
) -> None:
    """Record ``action`` and ask the leg to do it.

    Raises:
        Exception: the leg's transport failed (the far end is gone).
    """
    if isinstance(action, HangupAction):
        await leg.hang_up(action.reason)
        return
    log.info("transferring the caller")
    target = action.target
    call.journal.updated(
        escalated=True, transfer_target=target.phone_number or target.extension_number
    )
    call.journal.event("transfer", {"target": target.as_wire()})
    if call.observer is not None:
        call.observer.transfer()
    await leg.transfer(target)

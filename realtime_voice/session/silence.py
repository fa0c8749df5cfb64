"""`SilenceWatch`: a caller who says nothing after the bot spoke is re-prompted, then let go.

After each answer heard to its end the watch waits ``delay_s``; if the caller has not
started a turn and no answer is being made, it asks for a prompt (``final=False``) and
waits again; after ``max_reprompts`` prompts the next one is the last (``final=True``:
the responder says goodbye and hangs up). Any speech resets the count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

__all__ = ["SilenceWatch"]

log = logging.getLogger(__name__)


class SilenceWatch:
    """One call's silence timer.

    Args:
        delay_s: quiet time after the bot finished before a prompt.
        max_reprompts: prompts before the final one.
        busy: whether the caller is mid-turn or an answer is under way (no prompt then).
        on_silence: told to prompt; ``final`` says it is the last prompt.
    """

    def __init__(
        self,
        *,
        delay_s: float,
        max_reprompts: int,
        busy: Callable[[], bool],
        on_silence: Callable[[bool], None],
    ) -> None:
        self.delay_s = delay_s
        self._max_reprompts = max_reprompts
        self._busy = busy
        self._on_silence = on_silence
        self._reprompts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The bot finished speaking: start (or restart) the wait."""
        self.cancel()
        self._task = asyncio.get_running_loop().create_task(self._wait(), name="silence")

    def cancel(self) -> None:
        """Stop waiting (the caller spoke, an answer started, the call ends)."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._task = None

    def caller_spoke(self) -> None:
        """Speech from the caller: stop waiting and start the prompt count again."""
        self.cancel()
        self._reprompts = 0

    async def _wait(self) -> None:
        await asyncio.sleep(self.delay_s)
        self._task = None
        if self._busy():
            return
        final = self._reprompts >= self._max_reprompts
        self._reprompts += 1
        log.info(
            "caller silent for %.0f s: %s",
            self.delay_s,
            "ending the call" if final else "re-prompt",
        )
        self._on_silence(final)

"""`Conversation`: turn-taking on one call — who speaks when, and what interrupts whom.

It hears the recogniser's events and the caller's keypresses, assembles the caller's
turns, asks the responder for answers and hands them to the `Speaker`. Its rules:

- Words over the bot interrupt it (barge-in), except a back-channel ("uh-huh",
  "yeah"), which is neither an interruption nor a turn. A bare speech onset interrupts
  only when the recogniser confirms it is real speech of a minimum length; otherwise
  the cut waits for words, so a cough or a blip does not cut the bot.
- A caller who goes on talking before any of the answer was heard drops that answer;
  the turn's text leads the next one.
- After the bot finished speaking, silence is watched (`SilenceWatch`): re-prompts,
  then a goodbye.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ai_pipeline.nlp import is_backchannel
from ai_pipeline.responder import (
    HandlesSilence,
    HangupAction,
    HistoryEntry,
    Responder,
    SayText,
    UserTurn,
)
from realtime_voice.log import log_transcript
from realtime_voice.providers.base import TranscriptResult
from realtime_voice.session.services import CallServices
from realtime_voice.session.silence import SilenceWatch
from realtime_voice.session.speaker import Action, Item, Speaker
from realtime_voice.session.turns import TurnAssembler

__all__ = ["Conversation", "single"]

log = logging.getLogger(__name__)

_MISSED = "Sorry, I missed that. Could you say it again?"
_GOODBYE = "I'm sorry, we have to end this call now. Please call back later. Goodbye."
_APOLOGY = "I'm sorry, we're having technical difficulties. Please call back later. Goodbye."


async def single(*items: Item) -> AsyncIterator[Item]:
    """A fixed response as the stream a responder would yield."""
    for item in items:
        yield item


class Conversation:
    """The turn-taking of one call.

    Args:
        speaker: the bot's voice.
        responder: decides what the bot says.
        call: the call's bookkeeping (history, record, counters, usage, settings).
        confirms_speech_start: whether the recogniser's speech onsets are real speech.
        last_voiced_at: when the caller's last audible frame arrived.
        on_action: carries out a transfer or hang-up once its last words were heard.
    """

    def __init__(
        self,
        *,
        speaker: Speaker,
        responder: Responder,
        call: CallServices,
        confirms_speech_start: Callable[[], bool],
        last_voiced_at: Callable[[], float | None],
        on_action: Callable[[Action], Awaitable[None]],
    ) -> None:
        settings = call.settings
        self._call = call
        self.speaker = speaker
        self.turns = TurnAssembler()
        self._responder = responder
        self._log_transcripts = settings.log_transcripts
        self._confirms_speech_start = confirms_speech_start
        self._last_voiced_at = last_voiced_at
        self._on_action = on_action
        self._ending = False
        self.silence = SilenceWatch(
            delay_s=settings.silence_reprompt_s,
            max_reprompts=settings.silence_max_reprompts,
            busy=lambda: self.turns.in_progress or speaker.making,
            on_silence=self._on_silence,
        )

    # -- what the bot starts -----------------------------------------------------------

    def greet(self, greeting: str) -> None:
        """Say the greeting (the call's media just started)."""
        self.speaker.say(
            lambda: single(SayText(greeting, cacheable=True)), "greeting_done", name="greeting"
        )

    def say_final(self, line: str, mark: str, *, then: Action | None = None) -> None:
        """Cut whatever is being said and say ``line`` (then ``then``): goodbyes, apologies."""
        items = (
            (SayText(line, cacheable=True),)
            if then is None
            else (SayText(line, cacheable=True), then)
        )
        self.speaker.say(lambda: single(*items), mark, name=mark.removesuffix("_done"))

    def say_goodbye(self, reason: str) -> None:
        """The server is shutting down: cut the bot, say goodbye, then hang up (``reason``)."""
        self.say_final(_GOODBYE, "goodbye_done", then=HangupAction(reason))

    async def apologise(self, *, within_s: float) -> None:
        """Something failed for good: say sorry (waiting at most ``within_s``)."""
        self.say_final(_APOLOGY, "apology_done")
        try:
            await asyncio.wait_for(self.speaker.wait(), within_s)
        except Exception:
            log.exception("could not say the apology")

    def stop(self) -> None:
        """The call is ending: no more prompts."""
        self._ending = True
        self.silence.cancel()

    # -- what the caller does ----------------------------------------------------------

    async def on_speech_started(self) -> None:
        """The recogniser heard speech begin."""
        self.silence.caller_spoke()
        speaker = self.speaker
        if speaker.audible():
            if not self._confirms_speech_start():
                return  # wait for words (`on_transcript`): a cough must not cut the bot
            await speaker.barge_in()
        elif (
            speaker.cancel_unvoiced()
            and self._call.context.history
            and self._call.context.history[-1].speaker == "caller"
        ):
            # The caller went on talking before any answer audio: the half-made answer is
            # dropped; its turn text stays unanswered and is merged into the next turn.
            self._call.context.history.pop()
            self._call.stats.turns -= 1

    async def on_transcript(self, result: TranscriptResult) -> None:
        """An interim or final transcript of the caller."""
        text = result.text.strip()
        is_final, speech_final = result.is_final, result.speech_final
        if text and self.speaker.audible():
            if is_backchannel(text):
                # "uh-huh", "yeah" while the bot talks: neither an interruption nor a turn.
                if is_final:
                    log_transcript(log, self._log_transcripts, "back-channel: %s", text)
                    self._call.stats.transcripts += 1
                    return
            else:
                await self.speaker.barge_in()
        if not is_final:
            return
        self._call.stats.transcripts += 1
        if text:
            log_transcript(log, self._log_transcripts, "caller said: %s", text)
            self.turns.add(text, result.confidence)
        if speech_final and self.turns.in_progress:
            self.end_of_turn()

    def end_of_turn(self) -> None:
        """The caller finished a turn: answer it."""
        turn = self.turns.end()
        if turn is None:
            return
        self._call.stats.turns += 1
        voiced_at = self._last_voiced_at()
        if voiced_at is not None:
            # The recogniser's endpointing: last audible caller audio → the turn's end.
            waited = self._call.clock() - voiced_at
            if waited < 10.0:
                self._call.stage("stt_final", waited)
        self._call.context.history.append(HistoryEntry("caller", turn.text))
        self._call.journal.turn("caller", turn.text, confidence=turn.confidence)
        self._respond(UserTurn(text=turn.text, confidence=turn.confidence))

    def on_dtmf(self, digit: str) -> None:
        """A keypress: what the caller "said" (PINs, menu choices) is a turn of its own."""
        self._call.stats.dtmf_digits += 1
        log_transcript(log, self._log_transcripts, "dtmf %s", digit)
        self._call.journal.event("dtmf", {"digit": digit})
        self._respond(UserTurn(text=f"[dtmf {digit}]", dtmf=digit))

    def on_turn_end(self) -> None:
        """The recogniser's separate end-of-turn signal."""
        if self.turns.in_progress:
            self.end_of_turn()

    def on_recognizer_replaced(self, reason: str) -> None:
        """The recogniser failed mid-call and a stand-in took over: what the caller said
        meanwhile is lost, so ask them to say it again (unless an answer is under way)."""
        self._call.journal.event("error", {"code": "stt_fallback", "message": reason[:200]})
        self._call.count_error("stt")
        self.turns.discard()
        if not self.speaker.making:
            self.speaker.say(
                lambda: single(SayText(_MISSED, cacheable=True)), name="stt-fallback-prompt"
            )

    # -- internals ---------------------------------------------------------------------

    def _respond(self, turn: UserTurn) -> None:
        """Answer ``turn``; an answer still under way is cut (barge-in rules apply)."""
        self.silence.cancel()
        self.speaker.expect_answer()
        self._call.meter.new_turn()
        self.speaker.say(lambda: self._responder.respond(turn, self._call.context), name="response")

    async def on_spoken(self, action: Action | None) -> None:
        """An utterance finished (the speaker's callback)."""
        if action is not None:
            await self._on_action(action)
        elif isinstance(self._responder, HandlesSilence) and not self._ending:
            self.silence.start()

    def _on_silence(self, final: bool) -> None:
        responder = self._responder
        assert isinstance(responder, HandlesSilence)
        self._call.journal.event("silence", {"final": final, "after_s": self.silence.delay_s})
        items = responder.silence(self._call.context, final=final)
        self.speaker.say(lambda: single(*items), name="silence-prompt")

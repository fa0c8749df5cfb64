"""Wiring: which providers and which responder this process runs, decided from settings.

`build_engines` picks the speech engines (the offline ones always; Deepgram in front
when a key is set or asked for), `build_responder` the flow responder and its chat
model, `warm_up` loads the models before the first call. Models are loaded once per
process (Moonshine ≈0.7 s, piper ≈1.5 s) at start-up, so the first caller does not wait
for them and no call ever loads its own copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ai_pipeline.customers import InMemoryCustomerDirectory
from ai_pipeline.responder import Responder, TransferTarget
from ai_pipeline.text_split import split_sentences
from realtime_voice.audio.format import AudioFormat
from realtime_voice.config import Settings, SettingsError
from realtime_voice.providers.base import SpeechToText, TextToSpeech
from realtime_voice.providers.deepgram_health import DeepgramHealth
from realtime_voice.session.engines import SpeechEngines

__all__ = ["build_engines", "build_responder", "warm_up"]

log = logging.getLogger(__name__)


def build_engines(settings: Settings) -> SpeechEngines:
    """Pick providers from settings (``auto`` → offline engines until a key is set).

    Raises:
        SettingsError: a provider was requested that this build cannot provide.
    """
    use_deepgram_stt = _wants_deepgram("STT_PROVIDER", settings.stt_provider, settings)
    use_deepgram_tts = _wants_deepgram("TTS_PROVIDER", settings.tts_provider, settings)

    from realtime_voice.providers.local_stt import LocalSpeechToText
    from realtime_voice.providers.local_tts import LocalTextToSpeech, default_synthesizer
    from realtime_voice.providers.moonshine import MoonshineRecognizer

    synthesizer = default_synthesizer()

    def make_local_stt(fmt: AudioFormat) -> SpeechToText:
        return LocalSpeechToText(
            MoonshineRecognizer.shared(),
            vad_threshold=settings.vad_threshold,
            speech_start_ms=settings.barge_in_min_speech_ms,
            end_silence_ms=settings.end_of_turn_silence_ms,
        )

    def make_local_tts(fmt: AudioFormat, voice: str | None = None) -> TextToSpeech:
        return LocalTextToSpeech(fmt, synthesizer, split_text=split_sentences)

    customers = InMemoryCustomerDirectory()
    closers: list[Callable[[], Awaitable[None]]] = []
    responder = build_responder(
        settings,
        TransferTarget(phone_number=settings.transfer_phone_number),
        customers,
        closers,
    )
    engines = SpeechEngines(
        make_stt=make_local_stt,
        make_tts=make_local_tts,
        responder=responder,
        stt_name="local",
        tts_name="local",
        customers=customers,
        closers=closers,
    )
    if use_deepgram_stt or use_deepgram_tts:
        _add_deepgram(engines, settings, use_deepgram_stt, use_deepgram_tts)
    return engines


def _wants_deepgram(var: str, value: str, settings: Settings) -> bool:
    if value == "deepgram" and not settings.deepgram_api_key:
        raise SettingsError(f"{var}=deepgram needs DEEPGRAM_API_KEY")
    return value == "deepgram" or (value == "auto" and settings.deepgram_api_key is not None)


def _add_deepgram(engines: SpeechEngines, settings: Settings, stt: bool, tts: bool) -> None:
    """Put Deepgram in front, keeping the offline engines as the fallback."""
    from realtime_voice.providers.deepgram_client import create_async_client, create_client
    from realtime_voice.providers.deepgram_options import DeepgramSttOptions
    from realtime_voice.providers.deepgram_stt import DeepgramSpeechToText
    from realtime_voice.providers.deepgram_tts import DeepgramTextToSpeech
    from realtime_voice.providers.fallback_tts import FallbackTextToSpeech

    key = settings.deepgram_api_key
    assert key is not None
    health = DeepgramHealth(key, settings.deepgram_base_url)
    engines.health = health
    engines.closers.append(health.aclose)
    if stt:
        client = create_client(
            key, base_url=settings.deepgram_base_url, ws_url=settings.deepgram_ws_url
        )
        options = DeepgramSttOptions(model=settings.deepgram_model)

        def make_deepgram_stt(fmt: AudioFormat) -> SpeechToText:
            # A G.711 call's bytes go to Deepgram as they are: no decode, no resample
            # and a quarter of the bytes of 16 kHz linear16.
            return DeepgramSpeechToText(client, options.for_call(fmt))

        engines.make_fallback_stt = engines.make_stt
        engines.make_stt = make_deepgram_stt
        engines.stt_name = "deepgram"
    if tts:
        handle = create_async_client(
            key, base_url=settings.deepgram_base_url, ws_url=settings.deepgram_ws_url
        )
        engines.closers.append(handle.aclose)
        local_tts = engines.make_tts

        def make_tts(fmt: AudioFormat, voice: str | None = None) -> TextToSpeech:
            model = settings.deepgram_tts_model
            if voice and voice.startswith("aura-"):
                model = voice
            elif voice:
                log.warning("voice %r is not an Aura model name: using %s", voice, model)
            return FallbackTextToSpeech(
                DeepgramTextToSpeech(fmt, handle.client, model=model, split_text=split_sentences),
                local_tts(fmt),
                split_text=split_sentences,
            )

        engines.make_tts = make_tts
        engines.tts_name = "deepgram"


def build_responder(
    settings: Settings,
    transfer_target: TransferTarget,
    customers: InMemoryCustomerDirectory | None = None,
    closers: list[Callable[[], Awaitable[None]]] | None = None,
) -> Responder:
    """The flow responder, with an OpenAI-compatible model when one is configured.

    Raises:
        SettingsError: a flow file is invalid (the message names file, key and problem), or
            the default flow does not exist.
    """
    from ai_pipeline.flow_reader import FlowError
    from ai_pipeline.flow_responder import FlowResponder
    from ai_pipeline.flow_schema import load_flows
    from ai_pipeline.llm import ChatModel

    try:
        flows = load_flows(settings.flows_dir)
    except FlowError as exc:
        raise SettingsError(f"VOICE_FLOWS_DIR: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"VOICE_FLOWS_DIR={settings.flows_dir!r}: {exc}") from None
    if settings.default_flow not in flows:
        raise SettingsError(
            f"VOICE_DEFAULT_FLOW={settings.default_flow!r} is invalid: expected one of "
            + ", ".join(sorted(flows))
        )
    chat_model: ChatModel | None = None
    wants_llm = settings.llm_provider == "openai" or (
        settings.llm_provider == "auto"
        and (settings.openai_api_key is not None or settings.openai_base_url is not None)
    )
    if wants_llm:
        if settings.openai_api_key is None and settings.openai_base_url is None:
            raise SettingsError("LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
        from ai_pipeline.openai_chat import OpenAIChatModel

        chat_model = OpenAIChatModel(
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            deadline_s=settings.llm_deadline_s,
            max_retries=settings.openai_max_retries,
            temperature=settings.openai_temperature,
            max_tokens=settings.openai_max_tokens,
        )
        if closers is not None:
            closers.append(chat_model.aclose)
    return FlowResponder(
        flows,
        default_flow=settings.default_flow,
        chat_model=chat_model,
        customers=customers if customers is not None else InMemoryCustomerDirectory(),
        transfer_target=transfer_target,
        llm_deadline_s=settings.llm_deadline_s,
        history_turns=settings.llm_history_turns,
    )


async def warm_up(engines: SpeechEngines, greeting_formats: tuple[AudioFormat, ...] = ()) -> None:
    """Load the models and pre-synthesize the default greeting, off the event loop.

    Args:
        engines: what to warm.
        greeting_formats: wire formats to cache the default greeting in (mu-law 8 kHz is
            what nearly every gateway uses).
    """
    from ai_pipeline.responder import ConversationContext
    from realtime_voice.providers.moonshine import MoonshineRecognizer

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, MoonshineRecognizer.shared)
    if engines.health is not None:
        await engines.health.refresh()
    greeting = engines.responder.greeting(ConversationContext(call_id="warm-up"))
    for fmt in greeting_formats:
        async for _ in engines.line_cache.speak(engines.make_tts(fmt), greeting, fmt):
            pass

"""`ChatModel` over an OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama...).

The OpenAI SDK stays inside this module: callers see `TextDelta`, `ToolCall` and
`LlmError` only. Three things the SDK does not do for a phone call are added here:

- an overall deadline: the SDK's timeout is per read, so a model that trickles tokens
  (or a slow first token plus a retry) could keep the caller in dead air for minutes;
- a retry policy of our own: the SDK would obey a ``Retry-After`` of up to two minutes,
  and retrying after text was already spoken would make the bot repeat itself;
- barge-in: closing the iterator early drops the HTTP stream at once, so the model
  stops generating (and billing) tokens nobody will hear.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

from ai_pipeline.llm import ChatMessage, LlmError, LlmUsageMeter, TextDelta, ToolCall, ToolSpec

__all__ = ["PLACEHOLDER_API_KEY", "ChatUsage", "OpenAIChatModel", "UsageTotals"]

log = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = "sk-no-key-required"
"""Sent when only a base URL is configured: local servers ignore the key, the SDK needs one."""

_RETRY_STATUSES = frozenset({408, 409, 429})
# Without a Retry-After, one short pause: long enough to skip a blip, short enough that
# the retry still fits a voice deadline. Jitter keeps many calls from retrying in step.
_BACKOFF_S = (0.15, 0.3)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ChatUsage:
    """Tokens billed for one completed model request.

    Attributes:
        model: the model name sent in the request.
        prompt_tokens: input tokens, as reported by the server.
        completion_tokens: output tokens, as reported by the server.
        call_id: the phone call the request served (from the logging context), ``-``
            when outside a call.
    """

    model: str
    prompt_tokens: int
    completion_tokens: int
    call_id: str = "-"


@dataclass(slots=True)
class UsageTotals:
    """Running totals over every request of one model instance (process-wide cost)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _AttemptFailed(Exception):
    """One request failed; `retryable` says whether a second try could succeed."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class _DeadlineExceeded(Exception):
    """The request budget is spent."""


class _Budget:
    """Time left for waiting on the model.

    Only time spent *inside* our awaits counts: a consumer that pauses between deltas
    (waiting for TTS, say) does not eat the model's budget, while connecting, retrying
    and every wait for a chunk do. A wall-clock deadline would instead fail a healthy
    stream whose chunks were already buffered, just because the consumer was slow.
    """

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    async def run(self, make: Callable[[], Awaitable[_T]]) -> _T:
        if self.left <= 0:
            raise _DeadlineExceeded
        start = time.monotonic()
        limit = asyncio.timeout(self.left)
        try:
            async with limit:
                return await make()
        except TimeoutError as exc:
            if limit.expired():
                raise _DeadlineExceeded from exc
            raise
        finally:
            self.left -= time.monotonic() - start


class OpenAIChatModel:
    """A streaming `ChatModel` backed by ``AsyncOpenAI`` chat completions.

    One ``AsyncOpenAI`` client (and so one HTTP connection pool) is created per instance
    and reused by every `stream` call, from any number of concurrent phone calls: build
    one instance per process and share it. Close it with `aclose` at shutdown.

    Args:
        model: the model name (``gpt-4o-mini``, or whatever a local server serves).
        base_url: the API root including ``/v1``; None means OpenAI (or the SDK's own
            ``OPENAI_BASE_URL`` lookup).
        api_key: the key; when None and ``base_url`` is set, a placeholder is sent
            (local servers ignore it; the SDK refuses an empty key).
        deadline_s: total time one `stream` call may spend waiting on the model,
            connection, retry pause and every chunk included (see `stream`).
        connect_timeout_s: TCP/TLS connect limit for one attempt.
        max_retries: extra attempts after a transient failure (connection error,
            timeout of one read, 408/409/429/5xx, error event), only while nothing has
            been yielded yet; the SDK's own retries are disabled.
        temperature: sampling temperature.
        max_tokens: cap on the answer's length.
        http_client: an ``httpx2.AsyncClient`` to use (tests, proxies); it then stays
            the caller's to close.
        on_usage: called with each request's `ChatUsage` when the server reports it, in
            the consumer's task (`ChatUsage.call_id` is the ``call_id`` given to `stream`).

    Raises:
        ValueError: a limit is not positive, or there is neither a key nor a base URL.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        deadline_s: float = 4.0,
        connect_timeout_s: float = 2.0,
        max_retries: int = 1,
        temperature: float = 0.3,
        max_tokens: int = 200,
        http_client: httpx2.AsyncClient | None = None,
        on_usage: Callable[[ChatUsage], None] | None = None,
    ) -> None:
        if not model:
            raise ValueError("model must not be empty")
        if deadline_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("deadline_s and connect_timeout_s must be positive")
        if max_retries < 0 or max_tokens <= 0:
            raise ValueError("max_retries must be >= 0 and max_tokens > 0")
        if not api_key:
            if not base_url:
                raise ValueError("an OpenAI chat model needs an API key or a base URL")
            api_key = PLACEHOLDER_API_KEY
        self.model = model
        self.deadline_s = deadline_s
        self.max_retries = max_retries
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._on_usage = on_usage
        self._owns_http = http_client is None
        self.usage_totals = UsageTotals()
        """Tokens over all requests so far (the per-request figures go to ``on_usage``)."""
        self._client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            # The per-read limit never needs to exceed the overall one, which bounds it.
            timeout=openai.Timeout(deadline_s, connect=connect_timeout_s),
            max_retries=0,
            http_client=http_client,
        )

    @property
    def base_url(self) -> str:
        """Where requests go (the SDK's normalised form, with a trailing slash)."""
        return str(self._client.base_url)

    async def aclose(self) -> None:
        """Close the connection pool (not an injected ``http_client``, which is the caller's)."""
        if self._owns_http:
            await self._client.close()

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        meter: LlmUsageMeter | None = None,
        call_id: str = "",
    ) -> AsyncGenerator[TextDelta | ToolCall, None]:
        """Stream the answer: text fragments as they arrive, tool calls once complete.

        Tool calls are yielded when the model finishes (their arguments arrive in
        fragments), after any text. Close the iterator early (``aclose()``, best via
        ``contextlib.aclosing``) to stop the model: the HTTP stream is dropped at once.

        The deadline counts the time spent waiting on the model, not the time the
        consumer takes between deltas.

        Args:
            messages: the conversation, system prompt first.
            tools: functions the model may call.
            meter: the call's meter: first-token latency, failures, tokens.
            call_id: the call served, for `ChatUsage.call_id`.

        Yields:
            `TextDelta` and `ToolCall` items, in order.

        Raises:
            LlmError: the model failed (after the allowed retry), missed the deadline,
                answered nothing at all, or produced a tool call whose arguments are
                not a JSON object. Deltas already yielded stay valid: a failure after
                them is never retried, so nothing is said twice.
        """
        wire_messages = [_message_param(m) for m in messages]
        wire_tools = [_tool_param(t) for t in tools]
        # The call being served learns how long it waited for the first token (retries
        # included: the caller waited through them too).
        started = meter.llm_request_started() if meter is not None else 0.0
        try:
            # aclosing: barge-in must close the inner generator (and its HTTP stream) now.
            attempts = self._attempts(wire_messages, wire_tools, meter, started, call_id)
            async with aclosing(attempts) as items:
                async for item in items:
                    yield item
        except LlmError:
            if meter is not None:
                meter.llm_failed()
            raise

    async def _attempts(
        self,
        wire_messages: list[ChatCompletionMessageParam],
        wire_tools: list[ChatCompletionFunctionToolParam],
        meter: LlmUsageMeter | None,
        started: float,
        call_id: str,
    ) -> AsyncGenerator[TextDelta | ToolCall, None]:
        """The first attempt and the allowed retry (see `stream`)."""
        budget = _Budget(self.deadline_s)
        retries_left = self.max_retries
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            try:
                attempt_items = self._attempt(wire_messages, wire_tools, budget, meter, call_id)
                async with aclosing(attempt_items) as items:
                    async for item in items:
                        if not yielded and meter is not None:
                            meter.llm_first_token(started)
                        yielded = True
                        yield item
                return
            except _DeadlineExceeded as exc:
                raise LlmError(
                    f"chat model {self.model!r}: no complete answer within the "
                    f"{self.deadline_s:g} s deadline (attempt {attempt})"
                ) from exc
            except _AttemptFailed as failure:
                cause = failure.__cause__
                if yielded or not failure.retryable or retries_left == 0:
                    after = " after part of the answer was streamed" if yielded else ""
                    raise LlmError(
                        f"chat model {self.model!r}: {failure.reason}{after} (attempt {attempt})"
                    ) from cause
                pause = failure.retry_after_s
                if pause is None:
                    pause = random.uniform(*_BACKOFF_S)
                if pause >= budget.left:
                    raise LlmError(
                        f"chat model {self.model!r}: {failure.reason}; a retry in {pause:g} s "
                        f"would miss the {self.deadline_s:g} s deadline (attempt {attempt})"
                    ) from cause
                retries_left -= 1
                log.warning(
                    "chat model %r: %s; retrying in %.2f s", self.model, failure.reason, pause
                )
                await asyncio.sleep(pause)
                budget.left -= pause

    async def _attempt(
        self,
        messages: list[ChatCompletionMessageParam],
        tools: list[ChatCompletionFunctionToolParam],
        budget: _Budget,
        meter: LlmUsageMeter | None,
        call_id: str,
    ) -> AsyncGenerator[TextDelta | ToolCall, None]:
        """One request: yield its items; failures become `_AttemptFailed`."""
        try:
            chunks: AsyncStream[ChatCompletionChunk] = await budget.run(
                lambda: self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    tools=tools if tools else openai.omit,
                    stream=True,
                    stream_options={"include_usage": True},
                    temperature=self._temperature,
                    max_tokens=self._max_tokens,
                )
            )
        except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
            raise _classify(exc) from exc
        try:
            calls: dict[int, _PartialCall] = {}
            finish_reason: str | None = None
            produced = False
            while True:
                try:
                    chunk = await budget.run(lambda: anext(chunks, None))
                except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
                    raise _classify(exc) from exc
                if chunk is None:
                    break
                if chunk.usage is not None:
                    self._record_usage(chunk.usage, meter, call_id)
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue  # n > 1 is never requested
                    delta = choice.delta
                    if delta.content:
                        produced = True
                        yield TextDelta(delta.content)
                    if delta.refusal:
                        # A refusal is meant for the user; on a phone that means spoken.
                        produced = True
                        yield TextDelta(delta.refusal)
                    for fragment in delta.tool_calls or ():
                        partial = calls.setdefault(fragment.index, _PartialCall())
                        if fragment.id:
                            partial.id = fragment.id
                        if fragment.function is not None:
                            partial.name += fragment.function.name or ""
                            if fragment.function.arguments:
                                partial.arguments.append(fragment.function.arguments)
                    if choice.finish_reason is not None:
                        finish_reason = choice.finish_reason
                        for call in _complete_calls(calls, finish_reason):
                            produced = True
                            yield call
                        calls.clear()
            # Some local servers end the stream without a finish_reason.
            for call in _complete_calls(calls, finish_reason):
                produced = True
                yield call
            if not produced:
                # Nothing to say is dead air on a phone: let the caller fall back.
                raise _AttemptFailed(
                    f"the model returned an empty answer (finish_reason {finish_reason})",
                    retryable=False,
                )
        finally:
            # Barge-in or failure: drop the connection so the model stops generating.
            await asyncio.shield(chunks.close())

    def _record_usage(
        self, usage: CompletionUsage, meter: LlmUsageMeter | None, call_id: str
    ) -> None:
        record = ChatUsage(
            model=self.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            call_id=call_id,
        )
        self.usage_totals.requests += 1
        self.usage_totals.prompt_tokens += record.prompt_tokens
        self.usage_totals.completion_tokens += record.completion_tokens
        log.debug(
            "chat model %r usage: %d prompt + %d completion tokens",
            self.model,
            record.prompt_tokens,
            record.completion_tokens,
        )
        if meter is not None:
            meter.llm_usage(record.prompt_tokens, record.completion_tokens)
        if self._on_usage is not None:
            self._on_usage(record)


def _complete_calls(calls: Mapping[int, _PartialCall], finish_reason: str | None) -> list[ToolCall]:
    """Turn the accumulated fragments into `ToolCall`s, in index order."""
    complete: list[ToolCall] = []
    for index in sorted(calls):
        partial = calls[index]
        if not partial.name:
            raise LlmError(f"tool call #{index} arrived without a function name")
        text = "".join(partial.arguments).strip()
        try:
            # No arguments at all is how some servers spell a call to a no-argument tool.
            arguments = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            hint = " (cut off by max_tokens)" if finish_reason == "length" else ""
            raise LlmError(
                f"tool call {partial.name!r}: arguments are not valid JSON{hint}: {text[:120]!r}"
            ) from exc
        if not isinstance(arguments, dict):
            raise LlmError(
                f"tool call {partial.name!r}: arguments must be a JSON object, "
                f"got {type(arguments).__name__}"
            )
        # Servers that omit ids (older llama.cpp) still need one to pair the tool result.
        complete.append(
            ToolCall(id=partial.id or f"call_{index}", name=partial.name, arguments=arguments)
        )
    return complete


def _classify(exc: Exception) -> _AttemptFailed:
    """Map an SDK/transport failure to a reason and whether a retry could help."""
    if isinstance(exc, openai.APITimeoutError):
        return _AttemptFailed("the server stopped answering (read timeout)", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return _AttemptFailed(f"connection failed: {exc.__cause__ or exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        headers = exc.response.headers
        retryable = status in _RETRY_STATUSES or status >= 500
        if headers.get("x-should-retry") == "false":
            retryable = False
        detail = exc.body.get("message") if isinstance(exc.body, Mapping) else None
        reason = f"HTTP {status}: {detail if isinstance(detail, str) else exc.message}"
        return _AttemptFailed(reason, retryable=retryable, retry_after_s=_retry_after(headers))
    if isinstance(exc, openai.APIError):
        # An error event inside the stream: the server gave up on this generation.
        return _AttemptFailed(f"error in the stream: {exc.message}", retryable=True)
    if isinstance(exc, httpx2.HTTPError):
        return _AttemptFailed(f"transport error: {exc}", retryable=True)
    if isinstance(exc, openai.OpenAIError):
        return _AttemptFailed(f"client error: {exc}", retryable=False)
    return _AttemptFailed(f"malformed response: {exc}", retryable=False)


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    """Our neutral message → the wire shape."""
    role = message.role
    if role == "system":
        return {"role": "system", "content": message.content}
    if role == "user":
        return {"role": "user", "content": message.content}
    if role == "tool":
        if not message.tool_call_id:
            raise LlmError("a tool message needs the tool_call_id it answers")
        return {"role": "tool", "content": message.content, "tool_call_id": message.tool_call_id}
    if role == "assistant":
        if not message.tool_calls:
            return {"role": "assistant", "content": message.content}
        calls: list[ChatCompletionMessageFunctionToolCallParam] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(_plain(call.arguments))},
            }
            for call in message.tool_calls
        ]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    raise LlmError(f"unknown message role {role!r}")


def _tool_param(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    parameters = _plain(tool.parameters)
    assert isinstance(parameters, dict)
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": parameters},
    }


def _plain(value: Any) -> Any:
    """Read-only mappings and tuples (frozen specs) → dicts and lists the encoder accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value

"""Wire shapes of the OpenAI chat-completions API, for the simulator (pure, no I/O).

Builds the JSON objects the real API sends: ``chat.completion.chunk`` objects for a
streamed reply (role chunk, content or tool-call fragments, a finish chunk, the optional
usage chunk), the ``chat.completion`` object for a plain request, and the
``{"error": {...}}`` bodies. `sse` frames one object as a server-sent event.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DONE_EVENT",
    "SimReply",
    "SimToolCall",
    "completion_object",
    "error_body",
    "estimate_tokens",
    "message_text",
    "new_completion_id",
    "prompt_text",
    "reply_chunks",
    "split_tokens",
    "sse",
    "usage_object",
]

DONE_EVENT = b"data: [DONE]\n\n"
"""The event that ends every stream."""

SYSTEM_FINGERPRINT = "fp_rvsim01"

# A word's leading space travels with it, as in BPE vocabularies; long words are cut
# into pieces of up to four characters so streaming looks like real tokens.
_TOKEN = re.compile(r"\s*[^\s]{1,4}|\s+")
_ARGUMENT_PIECE = 8


@dataclass(frozen=True, slots=True)
class SimToolCall:
    """A tool call the simulated model makes.

    Attributes:
        name: the function name.
        arguments: JSON-serialisable arguments (sent as a fragmented JSON string), or a
            string sent verbatim (to imitate a model that writes broken JSON).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    def arguments_json(self) -> str:
        """The arguments as the model writes them."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True, slots=True)
class SimReply:
    """What the simulated model answers: text, tool calls, or both (text first).

    Attributes:
        text: the assistant text, streamed in token-sized pieces.
        tool_calls: calls streamed after the text, arguments in fragments.
    """

    text: str = ""
    tool_calls: tuple[SimToolCall, ...] = ()

    @property
    def finish_reason(self) -> str:
        """``tool_calls`` when the model called a tool, else ``stop``."""
        return "tool_calls" if self.tool_calls else "stop"


def split_tokens(text: str) -> list[str]:
    """Cut text into token-like pieces whose concatenation is exactly ``text``."""
    return _TOKEN.findall(text)


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters per token), never below 1 for text."""
    return max(1, round(len(text) / 4)) if text else 0


def new_completion_id() -> str:
    """An id in the API's format, ``chatcmpl-`` and random characters."""
    return "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "a").replace("_", "b")[:29]


def _new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(18).replace("-", "c").replace("_", "d")[:24]


def sse(obj: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``data: <compact JSON>`` and a blank line."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def error_body(
    message: str, *, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The API's error object: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The ``usage`` object with its detail sub-objects."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def reply_chunks(
    reply: SimReply,
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    prompt_tokens: int,
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one streamed reply, in order.

    The first chunk carries the role; content then comes one token-like piece per
    chunk; each tool call opens with its id, type, name and empty arguments, then its
    arguments follow in fragments; a chunk with an empty delta carries the
    finish_reason; with ``include_usage`` every chunk has ``usage: null`` and a last
    chunk has no choices and the usage.

    Args:
        reply: what to say.
        completion_id: shared by every chunk of the stream.
        created: Unix time, shared by every chunk.
        model: echoed model name.
        include_usage: the request's ``stream_options.include_usage``.
        prompt_tokens: reported in the usage chunk.

    Yields:
        JSON-ready dicts; frame each with `sse`, then send `DONE_EVENT`.
    """
    completion_tokens = 0

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    pieces = split_tokens(reply.text)
    if pieces or not reply.tool_calls:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in pieces:
            completion_tokens += 1
            yield chunk({"content": piece})
    for index, call in enumerate(reply.tool_calls):
        opening: dict[str, Any] = {
            "tool_calls": [
                {
                    "index": index,
                    "id": _new_call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
        }
        if index == 0 and not pieces:
            opening = {"role": "assistant", "content": None, "refusal": None, **opening}
        yield chunk(opening)
        arguments = call.arguments_json()
        for start in range(0, len(arguments), _ARGUMENT_PIECE):
            completion_tokens += 1
            fragment = arguments[start : start + _ARGUMENT_PIECE]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
            "usage": usage_object(prompt_tokens, completion_tokens),
        }


def completion_object(
    reply: SimReply,
    *,
    completion_id: str,
    created: int,
    model: str,
    prompt_tokens: int,
) -> dict[str, Any]:
    """The ``chat.completion`` object answering a request without ``stream``."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.text or not reply.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    completion_tokens = estimate_tokens(reply.text)
    if reply.tool_calls:
        calls: list[dict[str, Any]] = []
        for call in reply.tool_calls:
            arguments = call.arguments_json()
            completion_tokens += estimate_tokens(arguments)
            calls.append(
                {
                    "id": _new_call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments},
                }
            )
        message["tool_calls"] = calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": usage_object(prompt_tokens, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def prompt_text(messages: Sequence[Any]) -> str:
    """All the text of the request's messages (for the rough prompt token count)."""
    parts: list[str] = []
    for message in messages:
        if isinstance(message, Mapping):
            parts.append(message_text(message))
    return "\n".join(parts)


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: a string ``content`` or the text parts of a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""

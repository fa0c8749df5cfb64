"""A local OpenAI-compatible chat-completions server for tests and load tests.

``POST /v1/chat/completions`` answers like the real API: server-sent events in the exact
``chat.completion.chunk`` shapes (tool calls in fragments, the usage chunk when asked,
``data: [DONE]``), or one ``chat.completion`` object without ``stream``. Replies come
from a queue scripted by a test, else from keyword rules (`openai_sim_rules`). Faults
can be injected: a slow first token, 429 with ``Retry-After``, 500, an error event in
mid-stream, a stall after the headers. Every request is logged for assertions,
including whether the client hung up before the end.

Run alone: ``realtime-voice simulate openai --port 8300``; point the server at it with
``OPENAI_BASE_URL=http://127.0.0.1:8300/v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from realtime_voice.testing.openai_sim_rules import DEFAULT_RULES, Rule, choose_reply
from realtime_voice.testing.openai_sim_wire import (
    DONE_EVENT,
    SimReply,
    SimToolCall,
    completion_object,
    error_body,
    estimate_tokens,
    new_completion_id,
    prompt_text,
    reply_chunks,
    sse,
)

__all__ = [
    "ALWAYS",
    "Faults",
    "OpenAISimulator",
    "Rule",
    "SimReply",
    "SimRequest",
    "SimToolCall",
    "add_arguments",
    "run",
]

ALWAYS = -1
"""A fault count meaning "on every request"."""

DEFAULT_PORT = 8300


@dataclass(slots=True)
class Faults:
    """Fault injection; counts go down as faults are used (`ALWAYS` never does).

    Applied in this order: 429, 500, stall; a request that passes all three gets a
    reply, delayed by ``first_token_delay_ms`` and maybe cut by a mid-stream error.

    Attributes:
        first_token_delay_ms: wait before the first chunk of every streamed reply (and
            before every plain reply), after the headers.
        rate_limit_times: answer this many requests 429 with ``Retry-After``.
        retry_after_s: the ``Retry-After`` value sent with a 429.
        server_error_times: answer this many requests 500.
        stall_times: this many requests get the stream headers, then nothing until the
            client gives up.
        mid_stream_error_times: this many streamed replies stop with an
            ``{"error": ...}`` event after ``mid_stream_error_after`` chunks.
        mid_stream_error_after: chunks sent before that error event.
    """

    first_token_delay_ms: float = 0.0
    rate_limit_times: int = 0
    retry_after_s: float = 1.0
    server_error_times: int = 0
    stall_times: int = 0
    mid_stream_error_times: int = 0
    mid_stream_error_after: int = 3

    def take(self, name: str) -> bool:
        """Use one of the named fault if any is left."""
        left: int = getattr(self, name)
        if left == 0:
            return False
        if left > 0:
            setattr(self, name, left - 1)
        return True


@dataclass(slots=True)
class SimRequest:
    """One request as the simulator saw it.

    Attributes:
        path: the request path.
        headers: request headers, names lower-cased.
        body: the parsed JSON body (None if it was not JSON).
        status: the HTTP status answered.
        fault: the fault injected, if any (``rate_limit``, ``server_error``, ``stall``,
            ``mid_stream_error``).
        outcome: ``completed``, ``rejected`` (an error status), ``error_event``,
            ``client_disconnected`` or ``server_closed``; empty while in progress.
        chunks_sent: streamed chunks written (not counting ``[DONE]``).
        finished: set once the outcome is known.
    """

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    status: int = 0
    fault: str | None = None
    outcome: str = ""
    chunks_sent: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self, outcome: str) -> None:
        """Record the outcome (the first one wins) and wake waiters."""
        if not self.outcome:
            self.outcome = outcome
        self.finished.set()


class OpenAISimulator:
    """An OpenAI-compatible chat-completions server on a local port.

    Args:
        host: interface to listen on.
        port: TCP port; 0 picks a free one (see `base_url` after `start`).
        api_key: when set, only ``Authorization: Bearer <api_key>`` is accepted;
            otherwise any non-empty bearer token is.
        token_delay_ms: pause between streamed chunks (a model's token rate).
        faults: fault injection settings; `faults` stays mutable between requests.
        rules: keyword rules used when no scripted reply is queued.
        fixed_reply: when set, the text of every unscripted reply (rules ignored).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        token_delay_ms: float = 15.0,
        faults: Faults | None = None,
        rules: Sequence[Rule] = DEFAULT_RULES,
        fixed_reply: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._api_key = api_key
        self.token_delay_ms = token_delay_ms
        self.faults = faults if faults is not None else Faults()
        self.rules = tuple(rules)
        self.fixed_reply = fixed_reply
        self.requests: list[SimRequest] = []
        """Every request received, oldest first."""
        self._script: deque[SimReply] = deque()
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._base_url = ""

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, valid once started."""
        if not self._base_url:
            raise RuntimeError("the simulator is not started")
        return self._base_url

    def script(self, *replies: SimReply | str) -> None:
        """Queue replies for the next requests, in order (a string is a text reply)."""
        for reply in replies:
            self._script.append(SimReply(reply) if isinstance(reply, str) else reply)

    async def start(self) -> str:
        """Start listening.

        Returns:
            The base URL to give the SDK, ``http://host:port/v1``.
        """
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        # Cancel a handler when its client hangs up: that is how a stalled or slow
        # stream notices a barge-in, and what the request log reports.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self._base_url = f"http://{self._host}:{port}/v1"
        return self._base_url

    async def close(self) -> None:
        """Stop: end streams in progress (outcome ``server_closed``) and the listener."""
        if self._runner is None:
            return
        self._closing = True
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        await self._runner.cleanup()
        self._runner = None

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = SimRequest(
            path=request.path, headers={k.lower(): v for k, v in request.headers.items()}
        )
        self.requests.append(record)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            response = await self._answer(request, record)
        except asyncio.CancelledError:
            record.finish("server_closed" if self._closing else "client_disconnected")
            raise
        except ConnectionError:
            record.finish("client_disconnected")
            raise
        finally:
            self._handlers.discard(task)
        record.status = response.status
        record.finish("completed" if response.status == 200 else "rejected")
        return response

    async def _answer(self, request: web.Request, record: SimRequest) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token:
            return _error(
                401,
                "No API key provided. Send it in the Authorization header as 'Bearer <key>'.",
                "invalid_request_error",
            )
        if self._api_key is not None and token != self._api_key:
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "The request body is not valid JSON.", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        record.body = body
        problem = _validate(body)
        if problem is not None:
            param, message = problem
            return _error(400, message, "invalid_request_error", param=param)

        faults = self.faults
        if faults.take("rate_limit_times"):
            record.fault = "rate_limit"
            return _error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
                headers={"Retry-After": f"{faults.retry_after_s:g}"},
            )
        if faults.take("server_error_times"):
            record.fault = "server_error"
            return _error(500, "The server had an error processing the request.", "server_error")

        stream = bool(body.get("stream"))
        if faults.take("stall_times"):
            record.fault = "stall"
            if stream:
                await _open_stream(request)
            await asyncio.Event().wait()  # until the client hangs up or we close

        reply = self._next_reply(body)
        model = str(body["model"])
        prompt_tokens = estimate_tokens(prompt_text(body["messages"]))
        completion_id = new_completion_id()
        created = int(time.time())
        if not stream:
            await asyncio.sleep(faults.first_token_delay_ms / 1000)
            obj = completion_object(
                reply,
                completion_id=completion_id,
                created=created,
                model=model,
                prompt_tokens=prompt_tokens,
            )
            return web.json_response(obj)

        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        error_after = (
            faults.mid_stream_error_after if faults.take("mid_stream_error_times") else None
        )
        response = await _open_stream(request)
        await asyncio.sleep(faults.first_token_delay_ms / 1000)
        chunks = reply_chunks(
            reply,
            completion_id=completion_id,
            created=created,
            model=model,
            include_usage=include_usage,
            prompt_tokens=prompt_tokens,
        )
        for chunk in chunks:
            if error_after is not None and record.chunks_sent >= error_after:
                record.fault = "mid_stream_error"
                await response.write(
                    sse(error_body("The model stopped unexpectedly.", type_="server_error"))
                )
                await response.write_eof()
                record.finish("error_event")
                return response
            if record.chunks_sent and self.token_delay_ms > 0:
                await asyncio.sleep(self.token_delay_ms / 1000)
            await response.write(sse(chunk))
            record.chunks_sent += 1
        await response.write(DONE_EVENT)
        await response.write_eof()
        return response

    def _next_reply(self, body: Mapping[str, Any]) -> SimReply:
        if self._script:
            return self._script.popleft()
        if self.fixed_reply is not None:
            return SimReply(self.fixed_reply)
        return choose_reply(body, self.rules)


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Request-Id": "req_" + new_completion_id()[9:],
        },
    )
    await response.prepare(request)  # headers go out now
    return response


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        error_body(message, type_=type_, code=code, param=param),
        status=status,
        headers=dict(headers or {}),
    )


def _validate(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem with a request body as (param, message), or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model", "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", "'messages' must be a non-empty array"
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in {
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        }:
            return f"messages[{i}].role", f"messages[{i}] has no valid role"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "tools", "'tools' must be an array"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``realtime-voice simulate openai`` options."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8300)")
    parser.add_argument("--api-key", help="accept only this bearer token (default: any)")
    parser.add_argument(
        "--token-delay-ms", type=float, default=15.0, help="pause between chunks (default 15)"
    )
    parser.add_argument("--reply", help="answer every request with this text (no rules)")
    faults = parser.add_argument_group("faults (counts; -1 means every request)")
    faults.add_argument(
        "--first-token-delay-ms", type=float, default=0.0, metavar="MS", help="slow first token"
    )
    faults.add_argument("--rate-limit", type=int, default=0, metavar="N", help="answer 429")
    faults.add_argument(
        "--retry-after", type=float, default=1.0, metavar="S", help="Retry-After of a 429"
    )
    faults.add_argument("--server-error", type=int, default=0, metavar="N", help="answer 500")
    faults.add_argument("--stall", type=int, default=0, metavar="N", help="headers, then nothing")
    faults.add_argument(
        "--mid-stream-error", type=int, default=0, metavar="N", help="error event mid-stream"
    )
    faults.add_argument(
        "--mid-stream-error-after",
        type=int,
        default=3,
        metavar="CHUNKS",
        help="chunks sent before that error (default 3)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM.

    Returns:
        The process exit code: 0 after a signal, 2 if the port cannot be opened.
    """
    faults = Faults(
        first_token_delay_ms=args.first_token_delay_ms,
        rate_limit_times=args.rate_limit,
        retry_after_s=args.retry_after,
        server_error_times=args.server_error,
        stall_times=args.stall,
        mid_stream_error_times=args.mid_stream_error,
        mid_stream_error_after=args.mid_stream_error_after,
    )
    sim = OpenAISimulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        token_delay_ms=args.token_delay_ms,
        faults=faults,
        fixed_reply=args.reply,
    )

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            base_url = await sim.start()
        except OSError as exc:
            print(
                f"openai simulator: cannot listen on {args.host}:{args.port}: {exc}",
                file=sys.stderr,
            )
            return 2
        print(f"OpenAI simulator listening: OPENAI_BASE_URL={base_url}", flush=True)
        try:
            await stop.wait()
        finally:
            await sim.close()
        return 0

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve())
    return 0

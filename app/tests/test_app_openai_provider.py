"""The OpenAI-compatible provider against a small real HTTP server speaking chat completions.

Unit-level tests drive the provider directly; the integration test runs the whole service with the
HTTP provider in its ensemble and checks that the API key never reaches logs, metrics or responses.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fa_helpers import ServiceProcess, fire

from fragrance_ai.errors import ProviderError
from fragrance_ai.providers.openai_compat import OpenAICompatProvider
from fragrance_ai.settings import Secret

API_KEY = "sk-test-DO-NOT-LEAK-4f9a1c"
GOOD_CONTENT = {
    "style": "citrus",
    "season": "summer",
    "gender": "unisex",
    "intensity": 0.4,
    "confidence": 0.8,
    "notes": {"top": ["bergamot", "lemon", "dragonfruit"], "heart": ["neroli", "rose"], "base": ["musk"]},
}


@dataclass
class Step:
    """One scripted answer: a status and body, after an optional delay."""

    status: int = 200
    content: Any = field(default_factory=lambda: GOOD_CONTENT)
    delay_s: float = 0.0
    raw_body: str | None = None


class FakeLLMServer:
    """A chat-completions server on a free loopback port answering from a script (last step repeats)."""

    def __init__(self) -> None:
        self.script: list[Step] = [Step()]
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                if step.delay_s:
                    time.sleep(step.delay_s)
                if step.raw_body is not None:
                    payload = step.raw_body.encode()
                else:
                    message = {"role": "assistant", "content": json.dumps(step.content)}
                    payload = json.dumps(
                        {
                            "id": "cmpl-1",
                            "object": "chat.completion",
                            "model": body.get("model"),
                            "choices": [{"index": 0, "message": message}],
                        }
                    ).encode()
                try:
                    self.send_response(step.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (with /v1)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A running FakeLLMServer, shut down after the test."""
    server = FakeLLMServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def make_provider(server: FakeLLMServer, **kwargs: Any) -> OpenAICompatProvider:
    kwargs.setdefault("timeout_s", 2.0)
    kwargs.setdefault("retries", 2)
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAICompatProvider(
        "openai:fake-model", base_url=server.base_url, api_key=Secret(API_KEY), **kwargs
    )


def run(provider: OpenAICompatProvider, brief: str = "fresh citrus", mode: str = "fast") -> Any:
    async def go() -> Any:
        try:
            return await provider.interpret(brief, mode)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_reply_is_parsed_and_the_request_is_well_formed(fake_llm: FakeLLMServer) -> None:
    result = run(make_provider(fake_llm), brief="a bright summer citrus", mode="creative")
    assert (result.model, result.style, result.intensity) == ("openai:fake-model", "citrus", 0.4)
    assert result.notes["top"] == ("bergamot", "lemon")  # the unknown note was dropped
    [request] = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "fake-model" and body["temperature"] == 1.0
    assert body["messages"][-1] == {"role": "user", "content": "a bright summer citrus"}


def test_server_errors_are_retried(fake_llm: FakeLLMServer) -> None:
    fake_llm.script = [Step(status=503, raw_body="busy"), Step(status=429, raw_body="slow down"), Step()]
    assert run(make_provider(fake_llm)).style == "citrus"
    assert len(fake_llm.requests) == 3


def test_a_timeout_is_retried_and_then_succeeds(fake_llm: FakeLLMServer) -> None:
    fake_llm.script = [Step(delay_s=1.0), Step()]
    started = time.monotonic()
    assert run(make_provider(fake_llm, timeout_s=0.2)).style == "citrus"
    assert len(fake_llm.requests) == 2
    assert time.monotonic() - started < 0.9  # it did not wait for the slow answer


def test_giving_up_names_url_and_cause_but_never_the_key(fake_llm: FakeLLMServer) -> None:
    fake_llm.script = [Step(status=500, raw_body=f"upstream error for key {API_KEY}")]
    with pytest.raises(ProviderError) as caught:
        run(make_provider(fake_llm, retries=1))
    message = str(caught.value)
    assert "failed after 2 attempts" in message and fake_llm.base_url in message and "HTTP 500" in message
    assert API_KEY not in message and "***" in message
    assert len(fake_llm.requests) == 2


def test_client_errors_are_not_retried_and_keys_echoed_by_the_server_are_scrubbed(
    fake_llm: FakeLLMServer,
) -> None:
    fake_llm.script = [Step(status=401, raw_body=json.dumps({"error": f"invalid api key {API_KEY}"}))]
    with pytest.raises(ProviderError) as caught:
        run(make_provider(fake_llm))
    assert "HTTP 401" in str(caught.value) and API_KEY not in str(caught.value)
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Step(raw_body="not json"), "gave no JSON message content"),
        (Step(content={**GOOD_CONTENT, "style": "plastic"}), "'style'='plastic' is not one of"),
        (Step(content={**GOOD_CONTENT, "intensity": 7}), "'intensity'=7 is not a number in [0, 1]"),
        (
            Step(content={**GOOD_CONTENT, "notes": {"top": ["x"], "heart": ["rose"], "base": ["musk"]}}),
            "notes.top names no known top note",
        ),
    ],
)
def test_unusable_replies_are_provider_errors(fake_llm: FakeLLMServer, step: Step, expected: str) -> None:
    fake_llm.script = [step]
    with pytest.raises(ProviderError) as caught:
        run(make_provider(fake_llm))
    assert expected in str(caught.value)


def test_connection_refused_is_retried_then_reported() -> None:
    provider = OpenAICompatProvider(
        "openai:m",
        base_url="http://127.0.0.1:9/v1",
        api_key=Secret(API_KEY),
        timeout_s=0.5,
        retries=1,
        backoff_s=0.01,
    )
    with pytest.raises(ProviderError, match="failed after 2 attempts: ConnectError"):
        run(provider)


@pytest.mark.integration
def test_service_with_a_failing_http_provider_degrades_and_never_leaks_the_key(
    fake_llm: FakeLLMServer, service_factory: Callable[..., ServiceProcess]
) -> None:
    fake_llm.script = [Step(status=401, raw_body=json.dumps({"error": f"bad key {API_KEY}"}))]
    service = service_factory(
        env={
            "LLM_ENSEMBLE_MODELS": "openai:fake-model,gpt-3.5-turbo",
            "OPENAI_BASE_URL": fake_llm.base_url,
            "OPENAI_API_KEY": API_KEY,
            "FRAGRANCE_LLM_RETRIES": "0",
        }
    ).wait_ready()
    responses = fire(service.base_url, [("POST", "/dna/create", {"brief": "fresh citrus"})] * 5)
    assert [r.status_code for r in responses] == [200] * 5
    assert all(r.json()["brief"]["models"] == ["gpt-3.5-turbo"] for r in responses)
    briefs = service.events("llm_brief")
    assert len(briefs) == 5 and all("HTTP 401" in b["provider_errors"][0] for b in briefs)
    assert len(fake_llm.requests) == 5
    assert fake_llm.requests[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"

    # Every provider down: 502 naming the failure, still without the key.
    down = service_factory(
        env={
            "LLM_ENSEMBLE_MODELS": "openai:fake-model",
            "OPENAI_BASE_URL": fake_llm.base_url,
            "OPENAI_API_KEY": API_KEY,
            "FRAGRANCE_LLM_RETRIES": "0",
        }
    ).wait_ready()
    failed = httpx.post(down.base_url + "/dna/create", json={"brief": "x"}, timeout=10)
    assert failed.status_code == 502 and "HTTP 401" in failed.json()["detail"]

    for svc in (service, down):
        texts = [svc.metrics_text(), httpx.get(svc.base_url + "/health").text]
        svc.stop()
        texts += [svc.log_file.read_text(), svc.stdout_file.read_text(), svc.stderr_file.read_text()]
        assert all(API_KEY not in text for text in texts)
    assert API_KEY not in failed.text and all(API_KEY not in r.text for r in responses)

"""A provider speaking the OpenAI-compatible chat-completions API over HTTP.

POST ``{base_url}/chat/completions`` with a bearer key, asks for a JSON object and validates the answer
into a ProviderReply. Timeouts, transport errors, 429 and 5xx are retried with a short exponential
backoff; other statuses fail at once. The API key appears only in the Authorization header: every error
message is built from the URL, status and a body excerpt with the key scrubbed out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from fragrance_ai import TIERS
from fragrance_ai.errors import ProviderError
from fragrance_ai.providers.base import ProviderReply, reply_from_json
from fragrance_ai.settings import Secret
from fragrance_ai.vocab import FAMILIES, GENDERS, NOTES, SEASONS

PREFIX = "openai:"
MODE_TEMPERATURE = {"fast": 0.2, "balanced": 0.6, "creative": 1.0}
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def system_prompt() -> str:
    """The instruction that makes a chat model answer in the reply format."""
    tiers = "; ".join(f"{tier}: {', '.join(sorted(NOTES[tier]))}" for tier in TIERS)
    return (
        "You are a perfumer. Read the fragrance brief and answer with one JSON object with keys "
        f"style (one of {', '.join(FAMILIES)}), season (one of {', '.join(SEASONS)}), "
        f"gender (one of {', '.join(GENDERS)}), intensity (0..1), confidence (0..1) and notes "
        f"(an object with lists top, heart, base of 2 to 5 notes ranked best first, chosen from {tiers})."
    )


class OpenAICompatProvider:
    """LLM provider for any server speaking the OpenAI chat-completions API."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: Secret,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.model = name[len(PREFIX) :] if name.startswith(PREFIX) else name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._key = api_key
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _redact(self, text: str) -> str:
        key = self._key.reveal()
        return text.replace(key, "***") if key else text

    def _http(self) -> httpx.AsyncClient:
        # Created lazily so that it binds to the running event loop.
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._key.reveal()}"} if self._key else {}
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s), headers=headers, transport=self._transport
            )
        return self._client

    async def interpret(self, brief: str, mode: str) -> ProviderReply:
        """Ask the server, retrying transient failures; ProviderError says why it gave up."""
        payload = {
            "model": self.model,
            "temperature": MODE_TEMPERATURE[mode],
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system_prompt()},
                {"role": "user", "content": brief},
            ],
        }
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), 2.0))
            try:
                response = await self._http().post(self.url, json=payload)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout_s:g}s"
                continue
            except httpx.TransportError as exc:
                last = f"{exc.__class__.__name__}: {self._redact(str(exc))}"
                continue
            if response.status_code in RETRY_STATUSES:
                last = f"HTTP {response.status_code}: {self._redact(response.text[:200])}"
                continue
            if response.status_code != 200:
                raise ProviderError(
                    f"{self.name}: POST {self.url} answered HTTP {response.status_code}: "
                    f"{self._redact(response.text[:200])}"
                )
            return self._parse(response)
        raise ProviderError(f"{self.name}: POST {self.url} failed after {attempts} attempts: {last}")

    def _parse(self, response: httpx.Response) -> ProviderReply:
        try:
            body: Any = response.json()
            content = body["choices"][0]["message"]["content"]
            data = json.loads(content)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"{self.name}: POST {self.url} gave no JSON message content "
                f"({exc.__class__.__name__}): {self._redact(response.text[:200])}"
            ) from None
        try:
            return reply_from_json(self.name, data)
        except ProviderError as exc:
            raise ProviderError(self._redact(str(exc))) from None

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

"""Content providers: who writes a draft. The template writes it as it is; a language model
writes one from the same facts (off unless ``messaging.llm_url`` is set).

A provider returns template text, rendered afterwards in the same sandbox as the marketer's
template, so a model can use ``{{ unsubscribe_url }}`` and nothing else: an unknown
placeholder fails the draft's checks like any other problem.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

_log = logging.getLogger(__name__)

# Structured output: the model answers this JSON object, nothing else.
_SCHEMA = {
    "type": "object",
    "properties": {"subject": {"type": "string"}, "body": {"type": "string"}},
    "required": ["subject", "body"],
    "additionalProperties": False,
}
_SYSTEM = (
    "You write one marketing message for one customer. Use only the facts given. Write the "
    "link {{ unsubscribe_url }} literally where an unsubscribe link belongs (email); use no "
    "other placeholder. Answer with JSON: subject (empty for SMS and push) and body."
)


class ProviderError(Exception):
    """The provider could not write a draft (unreachable, malformed answer)."""


class ContentProvider(Protocol):
    name: str

    def write(
        self, facts: Mapping[str, Any], *, template: str, feedback: Sequence[str] = ()
    ) -> str:
        """Template text for one recipient; ``feedback``: why the previous draft failed."""
        ...


class TemplateProvider:
    name = "template"

    def write(
        self, facts: Mapping[str, Any], *, template: str, feedback: Sequence[str] = ()
    ) -> str:
        return template


class ChatProvider:
    """An OpenAI-compatible chat completions endpoint, at temperature 0 with a JSON schema.

    Answers are cached on disk by the hash of the request, so the same facts never cost a
    second call (and a re-run writes the same drafts)."""

    name = "llm"

    def __init__(
        self, url: str, *, model: str, cache: Path, api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:  # fmt: skip
        self.url = url
        self.model = model
        self.cache = cache
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def write(
        self, facts: Mapping[str, Any], *, template: str, feedback: Sequence[str] = ()
    ) -> str:
        request = self._request(facts, template, feedback)
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        cached = self.cache / f"{key}.json"
        if cached.exists():
            answer = json.loads(cached.read_text(encoding="utf-8"))
        else:
            answer = self._ask(request)
            self.cache.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial")
            partial.write_text(json.dumps(answer), encoding="utf-8")
            partial.replace(cached)
        subject, body = str(answer["subject"]).strip(), str(answer["body"])
        return f"Subject: {subject}\n\n{body}" if subject else body

    def _request(
        self, facts: Mapping[str, Any], template: str, feedback: Sequence[str]
    ) -> dict[str, Any]:
        prompt = {"facts": facts, "example": template}
        if feedback:
            prompt["the previous draft was refused because"] = list(feedback)
        return {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": json.dumps(prompt, sort_keys=True, default=str)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "message", "strict": True, "schema": _SCHEMA},
            },
        }

    def _ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(self.url, json=request)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
            answer = json.loads(content)
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as error:
            raise ProviderError(f"llm at {self.url}: {error}") from error
        if not isinstance(answer, dict) or not {"subject", "body"} <= answer.keys():
            raise ProviderError(f"llm at {self.url}: answer is not {{subject, body}}")
        return answer

    def close(self) -> None:
        self._http.close()

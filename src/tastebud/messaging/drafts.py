"""One recipient's draft: written by the provider, rendered in the sandbox, checked; a model's
draft that fails is retried once with the reasons, then replaced by the template version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from tastebud.errors import InvalidInput
from tastebud.messaging.checks import check_draft
from tastebud.messaging.content import Draft, compile_template, render
from tastebud.messaging.providers import ContentProvider, ProviderError

LLM_ATTEMPTS = 2  # the first draft and one retry


@dataclass(frozen=True, slots=True)
class DraftOutcome:
    draft: Draft
    provider: str  # who wrote what is sent: "template" or "llm"
    problems: list[str]  # why it cannot be sent (empty: it can)
    fallback: list[str] = field(default_factory=list)  # why a model's draft was replaced


@dataclass(frozen=True, slots=True)
class DraftRules:
    channel: str
    html: bool
    banned_words: Sequence[str]
    max_sms_parts: int


class Drafter:
    """Drafts for one message: its templates compiled once, checked against its rules."""

    def __init__(
        self, templates: Mapping[str, str], provider: ContentProvider, rules: DraftRules
    ) -> None:
        self.sources = dict(templates)
        self.compiled = {
            treatment: compile_template(source, name=f"template {treatment!r}", html=rules.html)
            for treatment, source in templates.items()
        }
        self.provider = provider
        self.rules = rules

    def write(
        self, treatment: str, context: Mapping[str, Any], facts: Mapping[str, Any]
    ) -> DraftOutcome:
        template_draft = render(self.compiled[treatment], context,
                                name=f"template {treatment!r}")  # fmt: skip
        if self.provider.name == "template":
            return DraftOutcome(template_draft, "template", self._check(template_draft, context))
        feedback: list[str] = []
        for _ in range(LLM_ATTEMPTS):
            try:
                text = self.provider.write(facts, template=self.sources[treatment],
                                           feedback=feedback)  # fmt: skip
                draft = render(self._compile(text), context, name="llm draft")
                problems = self._check(draft, context)
            except (ProviderError, InvalidInput) as error:
                problems = [str(error)]
            if not problems:
                return DraftOutcome(draft, "llm", [])
            feedback = problems
        return DraftOutcome(template_draft, "template", self._check(template_draft, context),
                            fallback=feedback)  # fmt: skip

    def _compile(self, text: str) -> jinja2.Template:
        return compile_template(text, name="llm draft", html=self.rules.html)

    def _check(self, draft: Draft, context: Mapping[str, Any]) -> list[str]:
        return check_draft(
            draft, channel=self.rules.channel, banned_words=self.rules.banned_words,
            unsubscribe_url=str(context["unsubscribe_url"]),
            max_sms_parts=self.rules.max_sms_parts,
        )  # fmt: skip

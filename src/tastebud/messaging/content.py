"""Message content from Jinja2 templates, rendered in a sandbox.

Templates (the marketer's, or a language model's draft) run in
:class:`jinja2.sandbox.SandboxedEnvironment`: no attribute of Python internals, no I/O. An
unknown name fails when the template is compiled, an unknown field of a known one when it is
rendered (``StrictUndefined``), each with a message naming it. HTML templates are autoescaped,
so a user's field cannot inject markup.

What a template sees:

    user             the recipient's fields, and ``user.id``
    item             the message's item's fields, and ``item.id`` (empty without an item)
    recommendations  the recipient's top items: ``id``, ``score`` and their fields
    unsubscribe_url  the recipient's signed unsubscribe link
    track(url)       ``url`` through the signed click redirect
    message          ``name``, ``channel``, ``treatment``

An email's first line may be ``Subject: …``; the rest is the body.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from tastebud.errors import InvalidInput

PLACEHOLDERS = frozenset({"user", "item", "recommendations", "unsubscribe_url", "track", "message"})


@dataclass(frozen=True, slots=True)
class Draft:
    subject: str
    body: str


def environment(*, html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=html, trim_blocks=True, lstrip_blocks=True
    )


def compile_template(source: str, *, name: str, html: bool) -> jinja2.Template:
    """Parse ``source`` and check that it names only known placeholders.

    Raises:
        InvalidInput: a syntax error (with its line) or an unknown placeholder (named).
    """
    env = environment(html=html)
    try:
        unknown = sorted(meta.find_undeclared_variables(env.parse(source)) - PLACEHOLDERS)
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise InvalidInput(f"{name}: line {error.lineno}: {error.message}") from None
    if unknown:
        raise InvalidInput(
            f"{name}: unknown placeholder {unknown[0]!r}; templates may use "
            f"{', '.join(sorted(PLACEHOLDERS))}"
        )
    return template


def render(template: jinja2.Template, context: Mapping[str, Any], *, name: str) -> Draft:
    """Render in the sandbox; the first line ``Subject: …`` becomes the subject.

    Raises:
        InvalidInput: an unknown field (``'dict object' has no attribute 'NAME'``) or an
            operation the sandbox forbids, named with the template.
    """
    try:
        text = template.render(context)
    except jinja2.UndefinedError as error:
        raise InvalidInput(f"{name}: unknown placeholder: {error.message}") from None
    except jinja2.TemplateError as error:  # SecurityError among others
        raise InvalidInput(f"{name}: {error}") from None
    draft = split_subject(text)
    if template.environment.autoescape:  # a mail header is text: no HTML entities in it
        return Draft(subject=html.unescape(draft.subject), body=draft.body)
    return draft


def split_subject(text: str) -> Draft:
    first, _, rest = text.lstrip().partition("\n")
    if first.lower().startswith("subject:"):
        return Draft(subject=first[len("subject:") :].strip(), body=rest.strip("\n"))
    return Draft(subject="", body=text.strip("\n"))

"""Likely machine opens and clicks: counted raw, never as a unique human open or click.

Three kinds of machine load a tracking pixel or follow a link without a person reading:

- prefetching mail proxies: Apple Mail Privacy Protection loads every image when mail arrives,
  with the bare user agent ``Mozilla/5.0``; browsers and proxies that prefetch say so in a
  ``Sec-Purpose`` / ``Purpose`` / ``X-Purpose`` / ``X-Moz`` header;
- security scanners and link checkers (Barracuda, Mimecast, Proofpoint, Safe Links, headless
  browsers, HTTP libraries), which name themselves in the user agent or send none;
- anything within ``machine_seconds`` of sending (2 s by default): no person opens that fast,
  scanners at the receiving server do.

Gmail's image proxy (``GoogleImageProxy``) fetches when the recipient opens the mail, so its
loads count as human opens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PREFETCH_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
_PREFETCH_VALUES = re.compile(r"prefetch|preview|prerender", re.IGNORECASE)
_SCANNERS = re.compile(
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|trend ?micro|forcepoint|ironport|"
    r"safelinks|safe links|bitdefender|sophos|fortinet|zscaler|bot\b|crawler|spider|"
    r"python-requests|python-urllib|aiohttp|httpx|curl/|wget|go-http-client|java/|okhttp|"
    r"headlesschrome|phantomjs|scanner|preview",
    re.IGNORECASE,
)
_APPLE_PRIVACY_PROXY = "Mozilla/5.0"


def machine_reason(
    headers: Mapping[str, str], *, seconds_since_send: float, machine_seconds: float
) -> str | None:
    """Why this load looks like a machine's (``prefetch``, ``scanner``, ``too-soon``), or None.

    Args:
        headers: the request's headers, names in lower case.
        seconds_since_send: from the send time signed into the token to this load.
        machine_seconds: loads sooner than this after sending are machines'.
    """
    if any(_PREFETCH_VALUES.search(headers.get(name, "")) for name in _PREFETCH_HEADERS):
        return "prefetch"
    agent = headers.get("user-agent", "").strip()
    if agent == _APPLE_PRIVACY_PROXY:
        return "prefetch"
    if not agent or _SCANNERS.search(agent):
        return "scanner"
    if seconds_since_send < machine_seconds:
        return "too-soon"
    return None

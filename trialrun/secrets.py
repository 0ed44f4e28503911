"""Secrets never reach output: a database URL's password and API keys are masked in every
line trialrun prints (the run line, errors, `runs`, reports, JSON) and in the text of store
errors, which drivers may build from the URL they were given."""

from __future__ import annotations

import os
import re

MASK = "***"

# scheme://user:password@host — the password is everything up to the last `@` of the netloc.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^\s/]*)@")
# keyword forms drivers print: password=..., "password": "...", Authorization: Bearer ...
_KEYWORDS = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|api[_-]?key|secret|access_token)\s*[=:]\s*[\"']?)"
    r"(?P<pw>[^\"'\s&;,]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<pw>[A-Za-z0-9._~+/=-]{8,})")
_KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TRIALRUN_TOKEN", "PGPASSWORD")


def mask_url(url: str) -> str:
    """A database URL as it may be printed: its password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: mask by pattern
        return mask(url)


def mask(text: str) -> str:
    """`text` with every password or key it may hold replaced by ***: URL passwords,
    `password=` keywords, bearer tokens, and the values of the API-key variables set in
    this process's environment."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@" if m["pw"] else m[0], text)
    text = _KEYWORDS.sub(lambda m: m["head"] + MASK, text)
    text = _BEARER.sub(lambda m: m["head"] + MASK, text)
    for var in _KEY_VARS:
        value = os.environ.get(var, "")
        if len(value) >= 6:  # a real secret, not a placeholder like "x"
            text = text.replace(value, MASK)
    return text

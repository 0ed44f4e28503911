"""Small text utilities: slugs, truncation, word counts, wrapping, title case."""

from __future__ import annotations

import re
import unicodedata

SMALL_WORDS = frozenset({"a", "an", "and", "of", "the", "in", "on", "or", "to"})


def slugify(text: str, sep: str = "-") -> str:
    """ASCII, lower-case, words joined by `sep`: 'Crème Brûlée!' -> 'creme-brulee'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9]+", sep, text).strip(sep)
    return text.lower()


def truncate(text: str, width: int, ellipsis: str = "...") -> str:
    """At most `width` characters; a cut text ends with `ellipsis`."""
    if width < len(ellipsis):
        raise ValueError("width is shorter than the ellipsis")
    if len(text) <= width:
        return text
    return text[: width - len(ellipsis)] + ellipsis


def word_count(text: str) -> int:
    return len(text.split())


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap; a word longer than `width` gets a line of its own."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def title_case(text: str) -> str:
    """Capitalise words, except small words that are neither first nor last."""
    words = text.split()
    out = []
    for i, w in enumerate(words):
        if 0 < i < len(words) - 1 and w.lower() in SMALL_WORDS:
            out.append(w.lower())
        else:
            out.append(w[:1].upper() + w[1:].lower())
    return " ".join(out)


def is_palindrome(text: str) -> bool:
    chars = [c.lower() for c in text if c.isalnum()]
    return chars == chars[::-1]

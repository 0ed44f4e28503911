"""textkit: small text utilities."""

from textkit.text import is_palindrome, slugify, title_case, truncate, word_count, wrap

__all__ = ["is_palindrome", "slugify", "title_case", "truncate", "word_count", "wrap"]

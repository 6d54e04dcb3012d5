"""Counts in words: "1 image", "2 images", "0 images". Every user-facing count goes through
``plural`` so that no message says "1 images"."""
from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and the noun in the number it needs; ``nouns`` for an irregular plural
    ("1 query", "3 queries")."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"

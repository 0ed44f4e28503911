import pytest
from textkit import is_palindrome, slugify, title_case, truncate, word_count, wrap


def test_slugify_ascii():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("  many   spaces  ") == "many-spaces"


def test_truncate():
    assert truncate("hello world", 8) == "hello..."
    assert truncate("short", 10) == "short"
    assert truncate("exactly", 7) == "exactly"
    with pytest.raises(ValueError):
        truncate("x", 2)


def test_word_count():
    assert word_count("one two three") == 3
    assert word_count("") == 0


def test_wrap():
    assert wrap("the quick brown fox", 9) == ["the quick", "brown fox"]
    assert wrap("a b c", 1) == ["a", "b", "c"]


def test_title_case():
    assert title_case("the lord of the rings") == "The Lord of the Rings"
    assert title_case("war and peace") == "War and Peace"


def test_palindrome():
    assert is_palindrome("A man, a plan, a canal: Panama")
    assert not is_palindrome("palindrome")

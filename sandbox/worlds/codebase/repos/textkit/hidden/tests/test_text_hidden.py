from textkit import slugify, title_case, truncate, word_count, wrap


def test_slugify_unicode():
    assert slugify("Crème Brûlée!") == "creme-brulee"
    assert slugify("Ærø straße") == "r-strae"


def test_truncate_boundary():
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdefg", 6) == "abc..."


def test_word_count_whitespace():
    assert word_count("  leading and   inner\tspaces\n") == 4
    assert word_count("   ") == 0


def test_wrap_exact_width():
    assert wrap("aaa bbb", 7) == ["aaa bbb"]
    assert wrap("aa bb cc", 5) == ["aa bb", "cc"]


def test_title_case_last_small_word():
    assert title_case("a place to come back to") == "A Place to Come Back To"
    assert title_case("a tale of two cities") == "A Tale of Two Cities"

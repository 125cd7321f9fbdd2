from decimal import Decimal

import pytest

from core.data.graders import parse_grader
from core.data.graders.number import last_number
from core.errors import TunelabError


def passed(spec: str, output: str, expected: str) -> bool:
    return parse_grader(spec)(output, expected).passed


@pytest.mark.parametrize(
    "text, number",
    [
        ("#### 42", "42"),
        ("The answer is 42.", "42"),  # the full stop ends the sentence, not a fraction
        ("3 apples and 5 pears, so 8", "8"),  # the last number wins
        ("$1,234.50", "1234.5"),
        ("12,000,000 people", "12000000"),
        ("-3 km", "-3"),
        ("+2", "2"),
        ("x = \u22127", "-7"),  # the minus sign
        ("-$5", "-5"),
        ("12%", "12"),
        ("1e3", "1000"),
        (".5", "0.5"),
        ("3,5", "5"),  # commas separate thousands (or list items), never decimals
        ("3/4", "4"),
        ("H2O and v2", None),  # digits inside a word are no number
        ("no idea", None),
        ("", None),
    ],
)
def test_the_last_number_of_a_text(text, number):
    assert last_number(text) == (None if number is None else Decimal(number))


def test_numbers_are_compared_as_numbers():
    assert passed("number", "The answer is 3.0.", "3")
    assert passed("number", "It costs $1,234.", "#### 1234")
    assert passed("number", "Natalia sold 72 clips.", "48/2 = <<48/2=24>>24 in May.\n#### 72")  # GSM8K
    assert passed("number", "-0", "0")
    assert not passed("number", "The answer is 42.", "43")
    assert not passed("number", "I cannot tell.", "42")  # no number: a fail
    assert not passed("number", "42 or maybe 41", "42")  # the last number is the answer


def test_a_tolerance_is_absolute_and_exact_in_decimal():
    assert passed("number:0.01", "1.24", "1.23")  # as floats, 1.24 - 1.23 > 0.01
    assert not passed("number:0.01", "1.25", "1.23")
    assert passed("number:1e-3", "0.3331", "0.333") and not passed("number", "0.3331", "0.333")
    assert parse_grader("number")("7", "7").score == 1.0 and parse_grader("number")("8", "7").score == 0.0


@pytest.mark.parametrize("spec", ["number:x", "number:-1", "number:nan", "number:inf", "number:1%"])
def test_a_bad_tolerance_is_refused_when_parsed(spec):
    with pytest.raises(TunelabError, match=f"grader '{spec}': tolerance must be a number, 0 or more"):
        parse_grader(spec)


def test_an_expected_answer_without_a_number_is_an_error_naming_the_grader():
    with pytest.raises(TunelabError, match=r"^grader 'number': the expected answer 'about a dozen' has no number$"):
        parse_grader("number")("12", "about\na   dozen")
    with pytest.raises(TunelabError, match="needs an expected answer"):
        parse_grader("number")("12", None)

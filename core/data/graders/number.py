"""`number[:tolerance]`: the last number in the answer equals the expected answer's last number, compared as
numbers (`3.0` is `3`, `1,234` is `1234`), within an absolute tolerance (default 0: exactly equal).

For math and extraction tasks: `#### 42` (GSM8K), `The answer is 42.`, `$1,234.50`, `-3 km`, `12%` all give
their number; the last number wins, so a GSM8K answer field with its working is graded by its `#### N`.
Numbers are decimal: an optional sign, an optional currency sign, digits with commas as thousands
separators, a fraction and an exponent (`1e3`); what follows (a unit, `%`) is ignored, not converted (`12%`
is 12). Not numbers: digits inside a word (`H2O`, `v2`), fractions (`3/4` is 3 then 4) and decimal commas
(`3,5` is 3 then 5). An answer with no number fails; an expected answer with none is an error."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from core.data.graders._base import Check, Grade, GraderSpec, pass_fail
from core.data.graders._registry import grader
from core.errors import TunelabError

NUMBER = re.compile(
    r"(?<![\w.])"  # not inside a word or another number
    r"(?P<sign>[-+\u2212]?)[$€£¥₹]?"  # a sign (or the minus sign), then a currency sign
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"  # 1,234.5 or 1234.5 or .5
    r"(?P<exponent>[eE][-+]?\d{1,4}(?!\d))?"
)


def last_number(text: str) -> Decimal | None:
    """The last number in `text`, exactly (a Decimal: 0.1 is 0.1), or None when it has none."""
    found = next(reversed([*NUMBER.finditer(text)]), None)
    if found is None:
        return None
    sign = "-" if found["sign"] in ("-", "\u2212") else ""
    return Decimal(sign + found["digits"].replace(",", "") + (found["exponent"] or ""))


def _tolerance(spec: GraderSpec) -> Decimal:
    try:
        value = Decimal(spec.arg.strip() or "0")
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise TunelabError(f"grader '{spec.text}': tolerance must be a number, 0 or more (number:0.01)")
    return value


@grader("number", "number[:tolerance]", "its last number equals the expected answer's, within the tolerance")
def number(spec: GraderSpec) -> Check:
    tolerance = _tolerance(spec)

    def check(output: str, expected: str | None) -> Grade:
        want = last_number(spec.expected(expected))
        if want is None:
            shown = " ".join(spec.expected(expected).split())[:60]
            raise TunelabError(f"grader '{spec.text}': the expected answer '{shown}' has no number")
        got = last_number(output)
        return pass_fail(got is not None and (got == want or abs(got - want) <= tolerance))

    return check

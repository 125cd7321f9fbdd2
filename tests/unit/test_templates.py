import pytest

from core.data.templates import Template
from core.errors import TunelabError


def test_render_and_variables_in_order():
    t = Template("Review: {{text}}\nIs it {{ label }}? Again: {{text}}")
    assert t.variables == ("text", "label")
    assert t.render({"text": "nice", "label": "good", "extra": 1}) == "Review: nice\nIs it good? Again: nice"


def test_single_braces_are_literal_json():
    t = Template('Answer as {"label": "{{x}}"}')
    assert t.render({"x": "positive"}) == 'Answer as {"label": "positive"}'


def test_no_code_runs_and_values_are_not_re_rendered():
    t = Template("{{a}}")
    assert t.render({"a": "{{b}} __import__('os')"}) == "{{b}} __import__('os')"


@pytest.mark.parametrize(
    "text,message",
    [
        ("hi {{name", "unbalanced '{{' (no closing '}}') at line 1, column 4"),
        ("a\nb }} c", "'}}' without an opening '{{' at line 2, column 3"),
        ("{{ x.__class__ }}", "attribute or item access is not allowed in '{{x.__class__}}'"),
        ("{{ x['k'] }}", "attribute or item access is not allowed"),
        ("{{ x() }}", "'{{x()}}' is not a variable name"),
        ("{{ }}", "empty placeholder"),
        ("{{ 1 + 1 }}", "is not a variable name"),
    ],
)
def test_malformed_templates_fail_at_once_with_a_position(text, message):
    with pytest.raises(TunelabError, match="^template: ") as info:
        Template(text)
    assert message in str(info.value)


def test_missing_variable_is_named_with_what_exists():
    t = Template("{{review}} -> {{label}}")
    with pytest.raises(TunelabError) as info:
        t.check({"text", "label"}, source="eval.jsonl")
    assert str(info.value) == ("template variable '{{review}}' has no value in eval.jsonl (available: label, text)")
    with pytest.raises(TunelabError, match="'{{label}}'"):
        t.render({"review": "x"})

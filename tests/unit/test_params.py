import pytest

from core.engine.params import GenParams
from core.errors import TunelabError


def test_defaults_are_greedy_and_round_trip():
    p = GenParams()
    assert p.greedy
    assert GenParams.from_dict(p.to_dict()) == p


def test_strings_from_the_ui_are_coerced():
    p = GenParams.from_dict({"max_new_tokens": "64", "temperature": "0.7", "seed": "", "stop": "\n"})
    assert (p.max_new_tokens, p.temperature, p.seed, p.stop) == (64, 0.7, None, ("\n",))
    assert not p.greedy


@pytest.mark.parametrize(
    "field,value",
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", 10**9),
        ("temperature", -1),
        ("top_p", 0),
        ("top_p", 1.5),
        ("top_k", -3),
        ("seed", -1),
        ("temperature", "hot"),
        ("max_new_tokens", 2.5),
        ("temperature", "nan"),
        ("top_k", True),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(TunelabError, match=field):
        GenParams.from_dict({field: value})


def test_unknown_parameter_is_named():
    with pytest.raises(TunelabError, match="'beam_width'"):
        GenParams.from_dict({"beam_width": 4})


def test_empty_stop_string_is_refused():
    with pytest.raises(TunelabError, match="stop"):
        GenParams(stop=("",))


def test_min_new_tokens_is_validated_and_absent_from_dicts_when_unused():
    from core.engine.params import GenParams
    from core.errors import TunelabError

    assert "min_new_tokens" not in GenParams().to_dict()
    assert GenParams.from_dict({"max_new_tokens": 8, "min_new_tokens": "8"}).to_dict()["min_new_tokens"] == 8
    with pytest.raises(TunelabError, match="min_new_tokens must be between 0 and max_new_tokens"):
        GenParams(max_new_tokens=4, min_new_tokens=5)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"temperature": 1e-45}, "temperature must be 0 \\(greedy\\) or between 0.01 and 10"),
        ({"seed": 10**30}, "seed must be between 0 and 4294967295"),
    ],
)
def test_values_that_break_sampling_are_refused(values, message):
    with pytest.raises(TunelabError, match=message):
        GenParams.from_dict(values)

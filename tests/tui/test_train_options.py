"""A training option is one declaration (a `TrainConfig` field's `option()` metadata): every declared option is
a flag with the field's default, a field of the run form where it has a place, and the same one-line error from
either when out of bounds. An option added to `TrainConfig` is checked here with no edit to this file."""

import argparse
from dataclasses import dataclass, field
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Checkbox, Input, Label, Static

from core.errors import TunelabError
from core.training.config import TRAIN_OPTIONS, TrainConfig
from core.training.options import Option, declared, option
from tests.conftest import here
from tui.cli.main import build_parser
from tui.cli.training import add_options, train_settings
from tui.screens.train_form import TrainForm

FLAGGED = [o for o in TRAIN_OPTIONS if o.flag is not None]
ON_FORM = sorted((o for o in TRAIN_OPTIONS if o.form is not None), key=lambda o: o.form or 0)
BOUNDED = [o for o in TRAIN_OPTIONS if (o.at_least, o.above, o.at_most, o.below) != (None,) * 4]


def train_args(*words: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *words])


def set_away(o: Option) -> tuple[list[str], Any]:
    """Command-line words that set `o` away from its default, and the value they set."""
    if isinstance(o.flag, tuple):
        return [o.flag[-1]], o.choices[-1]
    flag = o.flags[0]
    if o.kind is bool:
        return [flag], not o.default
    if o.kind is dict:
        return [flag, "a=b", flag, "c = d"], {"a": "b", "c": "d"}
    if o.kind is tuple:
        return [flag, "q_proj, v_proj"], ("q_proj", "v_proj")
    if o.choices:
        value: Any = next(c for c in o.choices if c != o.default)
    elif o.kind in (int, float):
        value = next(v for v in (o.at_least, o.at_most, 1, 2) if v is not None and v != o.default)
    else:
        value = "other"
    return [flag, str(value)], o.kind(value)


def broken(o: Option) -> list[Any]:
    """Values just outside each of `o`'s bounds."""
    step = 1 if o.kind is int else 0.5
    values = [] if o.at_least is None else [o.at_least - step]
    values += [] if o.above is None else [o.above]
    values += [] if o.at_most is None else [o.at_most + step]
    return values + ([] if o.below is None else [o.below])


def test_the_declarations_are_whole():
    places = [o.form for o in ON_FORM]
    assert len(set(places)) == len(places), "two options share a place on the form"
    for o in TRAIN_OPTIONS:
        assert all(o.helps), f"{o.name} has no help"
        assert (o.label is None) == (o.form is None), f"{o.name}: a label and a place on the form go together"
        assert not isinstance(o.flag, tuple) or len(o.flag) == len(o.choices) == len(o.helps), o.name
        assert o.problem(o.default) is None, f"{o.name}'s default breaks its own bounds"


def test_every_flag_is_generated_and_defaults_to_the_field():
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = commands.choices["train"]
    flags = {s for action in train._actions for s in action.option_strings}
    assert {f for o in FLAGGED for f in o.flags} <= flags
    settings = train_settings(train_args())
    assert settings == {o.name: getattr(TrainConfig(), o.name) for o in FLAGGED}
    shown = train.format_help()
    assert all(" ".join(h.split()[:4]) in " ".join(shown.split()) for o in FLAGGED for h in o.helps)


@pytest.mark.parametrize("o", FLAGGED, ids=[o.name for o in FLAGGED])
def test_each_flag_sets_its_own_field(o):
    words, value = set_away(o)
    assert train_settings(train_args(*words))[o.name] == value
    if o.none:
        assert train_settings(train_args(o.flags[0], o.none))[o.name] is None


def test_a_new_option_is_one_declaration():
    @dataclass(frozen=True)
    class Wider(TrainConfig):
        warmup_steps: int = field(
            default=0, metadata=option("steps warming up", flag="--warmup-steps", label="warmup", form=99, at_least=0)
        )

    options = declared(Wider)
    parser = argparse.ArgumentParser()
    add_options(parser, options)
    assert train_settings(parser.parse_args(["--warmup-steps", "5"]), options)["warmup_steps"] == 5
    with pytest.raises(TunelabError, match="^warmup_steps must be at least 0$"):
        Wider(warmup_steps=-1)


class FormApp(App):
    def on_mount(self) -> None:
        self.push_screen(TrainForm("demo", "senti"))


async def test_every_form_option_is_on_the_form_in_its_place_with_its_default():
    app = FormApp()
    async with app.run_test(size=(100, 36)):
        form = app.screen
        grid = [str(label.render()) for label in form.query_one("#train-grid").query(Label)]
        assert grid == [o.label for o in ON_FORM if o.kind is not bool]
        switches = [str(box.name) for box in form.query("#train-switches Checkbox").results(Checkbox)]
        assert switches == [o.label for o in ON_FORM if o.kind is bool]
        settings = form.settings()
        assert {o.name: settings[o.name] for o in ON_FORM} == {o.name: getattr(TrainConfig(), o.name) for o in ON_FORM}


def form_error(form: TrainForm, o: Option, text: str) -> str:
    """What the form says when `text` is typed into `o`'s field and enter pressed (the field then reset)."""
    field_input = form.query_one(f"#train-{o.name}", Input)
    field_input.value = text
    form.action_submit()
    field_input.value = o.shown(o.default)
    return str(form.query_one("#train-error", Static).render())


async def test_a_broken_bound_is_the_same_line_from_the_flag_and_the_form(capsys):
    said = {}  # (option, value typed) -> the one line, checked on the command line (outside the app: its streams)
    for o in BOUNDED:
        for value in broken(o):
            with pytest.raises(TunelabError) as refused:
                TrainConfig(**{o.name: o.kind(value)})
            line = str(refused.value)
            assert line.startswith(f"{o.name} must be "), line  # one place says it, naming the field
            cli = here(capsys, "train", o.flags[0], str(value), "--detach")
            assert (cli.returncode, cli.stderr) == (2, f"tunelab: error: {line}\n")
            said[o, str(value)] = line
    app = FormApp()
    async with app.run_test(size=(100, 36)):
        on_form = {(o, text): line for (o, text), line in said.items() if o.form is not None}
        assert {key: form_error(app.screen, *key) for key in on_form} == on_form
    assert len(on_form) >= 10


async def test_a_value_that_is_no_number_names_the_field_in_the_flag_and_the_form(capsys):
    numbers = [o for o in ON_FORM if o.kind in (int, float)]
    app = FormApp()
    async with app.run_test(size=(100, 36)):
        said = {o: form_error(app.screen, o, "many") for o in numbers}
    for o in numbers:
        assert said[o] == f"{o.name} must be {'a whole number' if o.kind is int else 'a number'}, got 'many'"
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", o.flags[0], "many"])
        assert f"argument {o.flags[0]}: {said[o]} (see tunelab train --help)" in capsys.readouterr().err

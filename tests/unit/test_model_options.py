"""One model option set, before or after the command, for every command that loads a model."""

import pytest

from core.engine.options import ModelOptions
from core.errors import TunelabError
from tui.cli import history
from tui.cli.main import build_parser
from tui.cli.options import MODEL_COMMANDS, given_model_flags, model_argv, model_options

OPTIONS = [
    "--model",
    "/m",
    "--adapter",
    "runA",
    "--allow-pickle",
    "--trust-remote-code",
    "--dtype",
    "bfloat16",
    "--device",
    "cpu",
]
EXPECTED = ModelOptions("/m", "runA", True, True, "bfloat16", "cpu")
COMMANDS = {
    "gen": ["gen", "hi"],
    "eval": ["eval", "--no-prompt"],
    "compare": ["compare", "--prompt", "p.toml"],
    "optimize": ["optimize", "--prompt", "p.toml"],
    "train": ["train"],
    "adapters": ["adapters", "merge", "--out", "x"],
    "serve": ["serve"],
}


def parse(argv):
    return build_parser().parse_args(history.normalize(argv))


def test_every_command_that_loads_a_model_is_in_the_table():
    assert set(COMMANDS) == MODEL_COMMANDS - {None}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("before", [True, False])
def test_every_model_command_takes_the_options_in_either_position(command, before):
    argv = OPTIONS + COMMANDS[command] if before else COMMANDS[command] + OPTIONS
    args = parse(argv)
    assert args.command == command and args.command in MODEL_COMMANDS
    assert model_options(args)[0] == EXPECTED


def test_the_app_takes_them_too():
    assert model_options(parse(OPTIONS))[0] == EXPECTED
    assert model_options(parse([]))[0] == ModelOptions()


@pytest.mark.parametrize(
    "argv", [["--model", "x", "history"], ["--device", "cpu", "runs"], ["--adapter", "a", "prompts", "list"]]
)
def test_commands_that_load_no_model_refuse_them(argv, capsys):
    from tui.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tunelab: error: ")


@pytest.mark.parametrize("options", [EXPECTED, ModelOptions(), ModelOptions("a b", None, False, True)])
def test_the_flags_of_a_set_parse_back_to_it(options):
    """`tunelab serve` starts each browser's app with them."""
    assert model_options(parse(model_argv(options)))[0] == options


def test_several_models_only_where_they_compare():
    args = parse(["eval", "--no-prompt", "--model", "a", "--model", "b", "--adapter", "r1", "--adapter", "r2"])
    options, models, adapters = model_options(args, several_models=True, several_adapters=True)
    assert models == ["a", "b"] and adapters == ["r1", "r2"] and options.model == "a"
    with pytest.raises(TunelabError, match="takes one --model"):
        model_options(parse(["gen", "hi", "--model", "a", "--model", "b"]))
    assert given_model_flags(parse(["gen", "hi"])) == []


def test_bad_values_are_one_line_errors():
    """Core names the field; the command line words it as its flag."""
    from tui.cli.guard import error_line

    with pytest.raises(TunelabError, match="^device must be") as raised:
        ModelOptions(device="gpu9")
    assert error_line(raised.value).startswith("tunelab: error: --device must be auto, cpu")
    with pytest.raises(SystemExit):
        parse(["gen", "hi", "--dtype", "int3"])


def test_history_words_search_and_actions_stay_actions():
    assert parse(["history", "search", "show"]).words == ["show"]
    assert parse(["history", "kind:eval"]).words == ["kind:eval"]
    assert parse(["history", "tag", "abc", "x"]).tags == ["x"]


def test_only_the_history_command_gets_its_default_action():
    assert parse(["--model", "history", "gen", "history"]).prompt == "history"
    assert parse(["--device", "cpu", "history", "kind:eval"]).words == ["kind:eval"]

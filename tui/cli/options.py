"""What a command runs with: the model option set every command that loads a model accepts (before or after
the command), and the workbench over the data dir."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.engine.options import DTYPES, ModelOptions
from core.errors import TunelabError

if TYPE_CHECKING:
    from core.workbench.service import Workbench

MODEL_FLAGS = {
    "models": "--model",
    "adapters": "--adapter",
    "allow_pickle": "--allow-pickle",
    "trust_remote_code": "--trust-remote-code",
    "dtype": "--dtype",
    "device": "--device",
}
MODEL_COMMANDS = {None, "gen", "eval", "compare", "optimize", "train", "adapters", "serve"}  # None: the TUI


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model option set; SUPPRESS defaults, so a value given before the command survives the
    subcommand's parse and `given_model_flags` can tell what the user typed."""
    group = parser.add_argument_group("model options (before or after the command)")
    none = argparse.SUPPRESS
    group.add_argument(
        "--model",
        dest="models",
        action="append",
        default=none,
        metavar="MODEL",
        help="'demo' (default), a local folder, a hub id, endpoint:NAME or URL#MODEL; eval and compare take "
        "several (compare trains on the first)",
    )
    group.add_argument(
        "--adapter",
        dest="adapters",
        action="append",
        default=none,
        metavar="A",
        help="a training run id, any PEFT adapter folder, or a LoRA a served model's server lists; eval and "
        "compare take several",
    )
    group.add_argument(
        "--allow-pickle",
        action="store_true",
        default=none,
        help="allow pickle (.bin) weights, which can run code when loaded",
    )
    group.add_argument(
        "--trust-remote-code", action="store_true", default=none, help="run model code shipped with a hub model"
    )
    group.add_argument("--dtype", choices=DTYPES, default=none, help="weights dtype (default: auto)")
    group.add_argument("--device", default=none, help="auto (default), cpu, cuda, cuda:N or mps")


def given_model_flags(args: argparse.Namespace) -> list[str]:
    return [flag for dest, flag in MODEL_FLAGS.items() if hasattr(args, dest)]


def model_options(
    args: argparse.Namespace, *, several_models: bool = False, several_adapters: bool = False
) -> tuple[ModelOptions, list[str], list[str]]:
    """The options, plus every model and adapter named (eval compares several)."""
    models: list[str] = getattr(args, "models", None) or ["demo"]
    adapters: list[str] = getattr(args, "adapters", None) or []
    if len(models) > 1 and not several_models:
        raise TunelabError(f"{args.command or 'tunelab'} takes one --model, got {len(models)}")
    if len(adapters) > 1 and not several_adapters:
        raise TunelabError(f"{args.command or 'tunelab'} takes one --adapter, got {len(adapters)}")
    options = ModelOptions(
        models[0],
        adapters[0] if adapters else None,
        bool(getattr(args, "allow_pickle", False)),
        bool(getattr(args, "trust_remote_code", False)),
        getattr(args, "dtype", "auto"),
        getattr(args, "device", "auto"),
    )
    return options, models, adapters


def model_argv(options: ModelOptions) -> list[str]:
    """The flags that give `options` back through `model_options` (`tunelab serve` starts the app so)."""
    argv = ["--model", options.model, "--dtype", options.dtype, "--device", options.device]
    argv += ["--adapter", options.adapter] if options.adapter else []
    argv += ["--allow-pickle"] if options.allow_pickle else []
    return argv + (["--trust-remote-code"] if options.trust_remote_code else [])


def command_at(argv: list[str]) -> int | None:
    """Where the command word is: the first argument that is neither an option nor an option's value."""
    takes_value = {"--model", "--adapter", "--dtype", "--device"}
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in takes_value
        else:
            return i
    return None


def workbench() -> Workbench:
    """The workbench over the data dir (TUNELAB_HOME or the XDG default) that every command works in."""
    from core.storage.paths import data_dir
    from core.workbench.service import Workbench

    return Workbench(data_dir())

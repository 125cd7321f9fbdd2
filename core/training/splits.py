"""Which rows a run trains on and which give its eval loss: never rows it trains on, never sealed rows (the
dataset's stored seal applies whatever the config says); a run's data is checked here before it exists. `split 'all'`
trains on every row of the file, so its eval loss comes from `eval_dataset` or is off (with a note)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

from core.data.datasets import Dataset, Item, load_dataset
from core.data.seals import fixed_holdout
from core.data.templates import Template
from core.engine.modelref import resolve, ships_chat_template
from core.errors import TunelabError
from core.training.config import TrainConfig


def train_rows(config: TrainConfig, dataset: Dataset) -> list[Item]:
    """The split's rows, or of them only those `rows` lists (a listed id the split lacks is refused)."""
    items = dataset.split(config.split)
    if config.rows:
        wanted = set(config.rows)
        items = [it for it in items if it.id in wanted]
        if missing := wanted - {it.id for it in items}:
            raise TunelabError(
                f"training row '{sorted(missing)[0]}' is not in split '{config.split}' of {dataset.name}"
            )
    if not items:
        raise TunelabError(f"dataset {dataset.name} has no rows in split '{config.split}'")
    return items


def eval_rows(config: TrainConfig, dataset: Dataset) -> tuple[list[Item], str]:
    """The eval loss's rows, and when there are none though one was asked for, why (said once)."""
    if config.eval_split is None and config.eval_dataset is None:
        return [], ""
    if config.eval_dataset is not None:  # its own eval split, or every row of a file that names none
        other = load_dataset(
            config.eval_dataset, expected=config.expected, mapping=config.mapping, holdout=config.eval_fraction
        )
        split = "auto" if config.eval_split in (None, "eval") else config.eval_split
        items = other.split(split)
        if not items:
            raise TunelabError(f"dataset {other.name} has no rows in split '{other.resolve_split(split) or 'all'}'")
        return items, ""
    if dataset.resolve_split(config.split) is None:
        return (
            [],
            f"no eval loss: split '{config.split}' trains on every row of {dataset.name} (eval_dataset gives one)",
        )
    if dataset.held_out and config.eval_fraction == 0:
        return [], f"no eval loss: eval_fraction 0 holds no row of {dataset.name} out (eval_dataset gives one)"
    items = dataset.split(config.eval_split)
    if not items:
        raise TunelabError(f"dataset {dataset.name} has no rows in split '{config.eval_split}'")
    return items, ""


def sealed_config(root: Path, config: TrainConfig) -> TrainConfig:
    """The config with its dataset's stored seal (sealed rows never train, whatever `holdout` says)."""
    return replace(config, holdout=fixed_holdout(root, config))


def check_data(config: TrainConfig) -> tuple[list[str], Dataset, list[Item]]:
    """Refuse a run whose rows cannot train (naming the file and row); what to know about them, as notes, the
    dataset and the rows it trains on (its ledger)."""
    if config.quantize and importlib.util.find_spec("bitsandbytes") is None:
        raise TunelabError(
            f"--load-in-{config.quantize} (QLoRA) needs bitsandbytes and a CUDA GPU: pip install bitsandbytes"
        )
    if config.mode == "chat" and ships_chat_template(resolve(config.model, allow_pickle=True)) is False:
        raise TunelabError(f"model '{config.model}' has no chat template: {{0}} chat needs one (use raw)", "mode")
    dataset = config.load_data()
    evaluated, note = eval_rows(config, dataset)
    if config.early_stop is not None and not evaluated:  # it would watch nothing, and train to the end
        raise TunelabError(f"{{0}} needs evaluations, and this run has no eval rows ({note})", "early_stop")
    trained = train_rows(config, dataset)
    for items in (trained, evaluated):
        if config.template:
            dataset.check_template(Template(config.template), items)
            dataset.check_template(Template(config.system), items)
    return ([note] if note else []), dataset, trained

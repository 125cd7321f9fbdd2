"""Which rows a run trains on and which give its eval loss: never rows it trains on. `split 'all'`
trains on every row of the file, so its eval loss comes from `eval_dataset` or is off (with a note)."""

from __future__ import annotations

from core.data.datasets import Dataset, Item, load_dataset
from core.errors import TunelabError
from core.training.config import TrainConfig


def train_rows(config: TrainConfig, dataset: Dataset) -> list[Item]:
    items = dataset.split(config.split)
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

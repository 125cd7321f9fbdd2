"""A training run's settings, validated once so every error names the field at fault. Each option a user sets is
declared here once, with its help, flag, run-form label and bounds (`option()`, core/training/options.py)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from core.data.graders import parse_grader
from core.data.templates import Template
from core.engine.options import ModelOptions
from core.engine.prompt import MODES
from core.errors import TunelabError
from core.storage import trackers
from core.training.options import Option, check, declared, option

SCHEDULES = ("cosine", "linear", "constant")
EARLY_STOP_METRICS = ("eval_loss", "pass_rate")  # lower is better, higher is better
ENDPOINT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5}$")
if TYPE_CHECKING:
    from core.data.datasets import Dataset

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
DATASET_HELP = (
    "'demo', a .jsonl/.json/.csv/.tsv/.parquet/.arrow file, a folder of split files,"
    " or FOLDER#NAME from a dataset_info.json"
)
HOLDOUT_HELP = (
    "seal this share of the eval rows away as the 'test' split (by id): iterate on the rest, judge once on it "
    "with compare --final (a dataset's own test split is sealed already)"
)
FRACTION_HELP = "rows of a file with no splits held out as 'eval' (chosen by id, the same in train and eval)"
REPORT_HELP = (
    "also report to this tracker, on this machine: TensorBoard event files or trackio's local store (train: each "
    "step's loss, learning rate, eval loss and pass rate, and the config; eval and compare: each variant's pass rate "
    "with its interval, and the items)"
)
QLORA_HELP = tuple(
    f"QLoRA: the base in {n}-bit through bitsandbytes (CUDA), for bases too large for memory" for n in (4, 8)
)


@dataclass(frozen=True)
class TrainConfig:
    """A run's settings. An option the user sets is declared here once (`option()`, core/training/options.py):
    its help, flag, run-form label and place, and bounds; the flags, the form and the checks follow from it."""

    # the model option set every command that loads a model takes (tui/cli/options.py)
    model: str = "demo"
    allow_pickle: bool = False
    trust_remote_code: bool = False
    dtype: str = "auto"
    device: str = "auto"
    dataset: str = field(default="demo", metadata=option(DATASET_HELP, flag="--dataset"))
    split: str = field(
        default="train",
        metadata=option(
            "split to train on ('all': every row of the file)", flag="--split", label="train split", form=1
        ),
    )
    rows: tuple[str, ...] = ()  # train on only these row ids of the split (a data-budget curve's subset); empty: all
    eval_split: str | None = field(
        default="eval",
        metadata=option(
            "split for the eval loss ('none' to skip)", flag="--eval-split", none="none", label="eval split", form=2
        ),
    )
    eval_dataset: str | None = field(  # the eval loss from another file (its eval split, or all its rows)
        default=None,
        metadata=option(
            "the eval loss from this file (its eval split, or all its rows) instead of --dataset's",
            flag="--eval-dataset",
            metavar="FILE",
        ),
    )
    eval_fraction: float = field(  # a file with no splits: this share of rows (by id hash) is `eval`
        default=0.1, metadata=option(FRACTION_HELP, flag="--eval-fraction", at_least=0, below=1)
    )
    holdout: float = field(  # of the eval rows, this share is the sealed `test` split: never trained on
        default=0.0, metadata=option(HOLDOUT_HELP, flag="--holdout", metavar="FRACTION")
    )
    # the prompt (`--prompt`, or the one on screen) sets template, system and mode
    template: str = ""  # empty: the item's own input, as the workbench's "no prompt" variant sends it
    system: str = ""
    shots: dict[str, Any] | None = None  # a k-shot prompt's demonstrations (`Shots.to_dict()`), kept out of the loss
    mode: str = field(  # without a template: raw sends items as they are, chat/auto through the chat template
        default="raw", metadata=option("how examples are rendered without --prompt", flag="--mode", choices=MODES)
    )
    expected: str | None = field(default=None, metadata=option("field holding the answer to learn", flag="--expected"))
    mapping: dict[str, str] = field(
        default_factory=dict,
        metadata=option("template variable from a field", flag="--map", metavar="VAR=FIELD"),
    )
    lora_r: int = field(default=16, metadata=option("LoRA rank", flag="--lora-r", label="LoRA r", form=6, at_least=1))
    lora_alpha: int = field(
        default=32,
        metadata=option("LoRA scaling numerator", flag="--lora-alpha", label="LoRA alpha", form=7, at_least=1),
    )
    lora_dropout: float = field(
        default=0.05,
        metadata=option(
            "dropout on the LoRA path", flag="--lora-dropout", label="LoRA dropout", form=8, at_least=0, below=1
        ),
    )
    target_modules: str | tuple[str, ...] = field(
        default="all-linear",
        metadata=option(
            "all-linear, or names like q_proj,v_proj", flag="--target-modules", label="target modules", form=18
        ),
    )
    modules_to_save: tuple[str, ...] = field(  # e.g. ("lm_head",): trained in full, far larger than the LoRA
        default=(),
        metadata=option(
            "comma list trained in full, e.g. lm_head (more memory and a much larger adapter)",
            flag="--modules-to-save",
            label="modules to save",
            form=19,
        ),
    )
    learning_rate: float = field(
        default=2e-3,
        metadata=option(
            "peak learning rate", flag="--learning-rate", label="learning rate", form=5, above=0, at_most=1
        ),
    )
    schedule: str = field(
        default="cosine",
        metadata=option("learning-rate schedule", flag="--schedule", label="schedule", form=17, choices=SCHEDULES),
    )
    warmup_ratio: float = field(
        default=0.05, metadata=option("share of steps spent warming up", flag="--warmup-ratio", at_least=0, below=1)
    )
    epochs: float = field(  # the demo's LoRAs reach 95%+ without a trained lm_head in 6 (50% in 3)
        default=6.0,
        metadata=option("passes over the data", flag="--epochs", label="epochs", form=3, above=0, at_most=10_000),
    )
    max_steps: int | None = field(
        default=None,
        metadata=option(
            "stop after this many steps (overrides --epochs)", flag="--max-steps", label="max steps", form=4, at_least=1
        ),
    )
    batch_size: int = field(
        default=16,
        metadata=option(
            "examples per micro-batch", flag="--batch-size", label="batch size", form=9, at_least=1, at_most=4096
        ),
    )
    grad_accum: int = field(
        default=1,
        metadata=option(
            "micro-batches per step", flag="--grad-accum", label="grad accum", form=10, at_least=1, at_most=1024
        ),
    )
    max_seq_len: int = field(
        default=256,
        metadata=option(
            "tokens per example, prompt and answer",
            flag="--max-seq-len",
            label="max seq len",
            form=11,
            at_least=8,
            at_most=131072,
        ),
    )
    eval_every: int | None = field(
        default=20,
        metadata=option("steps between eval losses", flag="--eval-every", label="eval every", form=12, at_least=1),
    )
    eval_items: int = field(  # >0: at each eval step, the pass rate of this many eval rows, generated and graded
        default=0,
        metadata=option(
            "also score this many eval rows' pass rate at each eval step (0: off; RUN@best)",
            flag="--eval-items",
            label="pass-rate rows",
            form=13,
            at_least=0,
            at_most=10_000,
        ),
    )
    eval_grader: str = field(  # how those rows are graded (a row's own checks win), as an eval grades them
        default="exact",
        metadata=option(
            "how --eval-items rows are graded (as eval's --grader)",
            flag="--eval-grader",
            label="pass-rate grader",
            form=14,
        ),
    )
    early_stop: int | None = field(  # patience: evaluations without improvement before the run ends (None: off)
        default=None,
        metadata=option(
            "end the run once the dev metric has not improved for this many evaluations (needs eval steps)",
            flag="--early-stop",
            metavar="PATIENCE",
            label="early stop",
            form=24,
            at_least=1,
            at_most=10_000,
        ),
    )
    early_stop_metric: str = field(
        default="eval_loss",
        metadata=option(
            "what --early-stop watches (pass_rate needs --eval-items)",
            flag="--early-stop-metric",
            label="stop metric",
            form=25,
            choices=EARLY_STOP_METRICS,
        ),
    )
    min_delta: float = field(  # an improvement by this much or less does not count
        default=0.0,
        metadata=option(
            "the least change of the metric that counts as an improvement for --early-stop",
            flag="--min-delta",
            label="min delta",
            form=26,
            at_least=0,
        ),
    )
    save_every: int | None = field(
        default=20,
        metadata=option("steps between checkpoints", flag="--save-every", label="save every", form=15, at_least=1),
    )
    seed: int = field(
        default=0,
        metadata=option(
            "seed for shuffling and init", flag="--seed", label="seed", form=16, at_least=0, at_most=2**32 - 1
        ),
    )
    answer_only_loss: bool = field(
        default=True, metadata=option("also take loss on the prompt tokens", flag="--full-loss", negate=True)
    )
    packing: bool = field(  # several examples per row, padding-free (when the model's attention keeps them apart)
        default=False,
        metadata=option(
            "pack each step's examples into full rows, padding-free (checked against padding at the start)",
            flag="--packing",
            label="packing",
            form=21,
        ),
    )
    gradient_checkpointing: bool = field(  # recompute activations in backward: less memory, ~30% more time
        default=False,
        metadata=option(
            "recompute activations in the backward pass: much less memory for long sequences, about 30% slower",
            flag="--gradient-checkpointing",
            label="checkpointing",
            form=20,
        ),
    )
    use_dora: bool = field(  # weight-decomposed LoRA (DoRA)
        default=False,
        metadata=option(
            "DoRA: weight-decomposed LoRA (often better at low rank)", flag="--use-dora", label="DoRA", form=22
        ),
    )
    use_rslora: bool = field(  # rank-stabilized scaling, alpha / sqrt(r)
        default=False,
        metadata=option(
            "rank-stabilized LoRA scaling (alpha/sqrt(r)) for high ranks", flag="--use-rslora", label="rsLoRA", form=23
        ),
    )
    quantize: str | None = field(  # "4bit" or "8bit": QLoRA on a base loaded through bitsandbytes (CUDA only)
        default=None,
        metadata=option(QLORA_HELP, flag=("--load-in-4bit", "--load-in-8bit"), choices=("4bit", "8bit")),
    )
    nproc: int = field(  # >1: torchrun with DDP (gloo on CPU, nccl on GPUs); a step takes nproc x grad_accum batches
        default=1,
        metadata=option(
            "processes under torchrun (DDP: gloo on CPU, nccl on GPUs); with --sweep, the runs trained at once, "
            "one GPU each",
            flag="--nproc",
            at_least=1,
            at_most=64,
        ),
    )
    nnodes: int = field(  # >1: torchrun's multi-node rendezvous at rdzv_endpoint; nproc processes on each node
        default=1,
        metadata=option(
            "machines in a multi-node run (torchrun rendezvous)", flag="--nnodes", at_least=1, at_most=1024
        ),
    )
    rdzv_endpoint: str | None = field(  # HOST:PORT of node 0 (its c10d store), the same on every node
        default=None,
        metadata=option("node 0's address and a free port, on every node", flag="--rdzv-endpoint", metavar="HOST:PORT"),
    )
    report_to: str | None = field(  # the trainer reports each step as it logs it: a dashboard outlives the TUI
        default=None, metadata=option(REPORT_HELP, flag="--report-to", choices=trackers.NAMES)
    )
    report_dir: str | None = field(  # made absolute by the workbench (the trainer may resume from elsewhere)
        default=None,
        metadata=option(
            "with --report-to tensorboard: event files go to DIR/ID (default: the run's or eval's own folder)",
            flag="--report-dir",
            metavar="DIR",
        ),
    )

    def __post_init__(self) -> None:
        check(self, declared(type(self)))  # each declared bound and choice
        if not isinstance(self.rows, (list, tuple)) or not all(isinstance(r, str) for r in self.rows):
            raise TunelabError("rows must be a list of row ids")
        object.__setattr__(self, "rows", tuple(self.rows))  # JSON gives a list back: the same config either way
        trackers.check(self.report_to, self.report_dir)
        if self.nnodes > 1 and not (self.rdzv_endpoint and ENDPOINT.match(self.rdzv_endpoint)):
            raise TunelabError(
                "nnodes above 1 needs rdzv_endpoint as HOST:PORT (node 0's address, the same on every node)"
            )
        self._check_early_stop()
        names = [] if self.target_modules == "all-linear" else list(self.target_modules)
        if self.target_modules != "all-linear" and not names:
            raise TunelabError("target_modules must be all-linear or module names like q_proj,v_proj")
        for name in [*names, *self.modules_to_save]:
            if not MODULE_NAME.match(name):
                raise TunelabError(
                    f"'{name}' is not a module name (target_modules/modules_to_save take names like q_proj,v_proj)"
                )
        Template(self.template)
        Template(self.system)
        try:
            parse_grader(self.eval_grader, ("label",))  # its syntax; bare `labels` takes the rows' answers
        except TunelabError as exc:
            raise TunelabError(f"{{0}}: {exc}", "eval_grader") from None
        ModelOptions(self.model, None, self.allow_pickle, self.trust_remote_code, self.dtype, self.device)

    def _check_early_stop(self) -> None:
        """Early stopping watches evaluations: a config that makes none (or scores no pass rate) is refused."""
        if self.early_stop is None:
            return
        if self.eval_every is None or (self.eval_split is None and self.eval_dataset is None):
            raise TunelabError(
                "{0} needs evaluations: set {1} and an {2} (or {3})", "early_stop", "eval_every", "eval_split",
                "eval_dataset",
            )  # fmt: skip
        if self.early_stop_metric == "pass_rate" and not self.eval_items:
            raise TunelabError(
                "{0} pass_rate needs {1} (the rows scored at each eval)", "early_stop_metric", "eval_items"
            )

    def steps_per_epoch(self, rows: int, world: int | None = None) -> int:
        """Optimizer steps one pass over `rows` examples takes (the loop's count; `world`: the processes, by
        default this config's nproc x nnodes)."""
        world = self.nproc * self.nnodes if world is None else world
        return max(1, math.ceil(rows / self.batch_size) // (self.grad_accum * world))

    def load_data(self) -> Dataset:
        """The run's dataset, split as the evals that judge it split it (sealed rows never trained on)."""
        from core.data.datasets import load_dataset

        return load_dataset(
            self.dataset, expected=self.expected, mapping=self.mapping, holdout=self.eval_fraction, sealed=self.holdout
        )

    def check_targets(self, valid: list[str]) -> None:
        """Every `target_modules` name must be one of the model's adaptable layers; the error lists them."""
        if self.target_modules == "all-linear":
            return
        unknown = [m for m in self.target_modules if m not in valid]
        if unknown:
            raise TunelabError(f"unknown target module '{unknown[0]}' (valid: all-linear, {', '.join(valid)})")

    @property
    def options(self) -> ModelOptions:
        return ModelOptions(self.model, None, self.allow_pickle, self.trust_remote_code, self.dtype, self.device)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TunelabError(f"unknown training setting '{unknown[0]}'")
        values = dict(data)
        for key in (o.name for o in TRAIN_OPTIONS if o.kind is tuple):  # JSON keeps name lists as lists
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise TunelabError(f"bad training settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in (*(o.name for o in TRAIN_OPTIONS if o.kind is tuple), "rows"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        if not self.rows:  # absent when every row trains: a run's stored config reads as it did before subsets
            del out["rows"]
        return out

    def differences(self, other: TrainConfig) -> list[str]:
        """`field: old -> new` for every setting that differs (a resume must change none)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} -> {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


TRAIN_OPTIONS: tuple[Option, ...] = declared(TrainConfig)  # in field order; the form orders its own by `form`

"""A training run's settings, validated once so every error names the field at fault."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from core.data.graders import parse_grader
from core.data.templates import Template
from core.engine.options import ModelOptions
from core.engine.prompt import MODES
from core.errors import TunelabError

SCHEDULES = ("cosine", "linear", "constant")
ENDPOINT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5}$")
if TYPE_CHECKING:
    from core.data.datasets import Dataset

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "demo"
    allow_pickle: bool = False
    trust_remote_code: bool = False
    dtype: str = "auto"
    device: str = "auto"
    dataset: str = "demo"
    split: str = "train"
    eval_split: str | None = "eval"
    eval_dataset: str | None = None  # the eval loss from another file (its eval split, or all its rows)
    eval_fraction: float = 0.1  # a file with no splits: this share of rows (by id hash) is `eval`
    holdout: float = 0.0  # of the eval rows, this share is the sealed `test` split: never trained on
    template: str = ""  # empty: the item's own input, as the workbench's "no prompt" variant sends it
    system: str = ""
    mode: str = "raw"  # without a template: raw sends items as they are, chat/auto through the chat template
    expected: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    modules_to_save: tuple[str, ...] = ()  # e.g. ("lm_head",): trained in full, far larger than the LoRA
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    warmup_ratio: float = 0.05
    epochs: float = 6.0  # the demo's LoRAs reach 95%+ without a trained lm_head in 6 (50% in 3)
    max_steps: int | None = None
    batch_size: int = 16
    grad_accum: int = 1
    max_seq_len: int = 256
    eval_every: int | None = 20
    eval_items: int = 0  # >0: at each eval step, the pass rate of this many eval rows, generated and graded
    eval_grader: str = "exact"  # how those rows are graded (a row's own checks win), as an eval grades them
    save_every: int | None = 20
    seed: int = 0
    answer_only_loss: bool = True
    packing: bool = False  # several examples per row, padding-free (when the model's attention keeps them apart)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% more time
    use_dora: bool = False  # weight-decomposed LoRA (DoRA)
    use_rslora: bool = False  # rank-stabilized scaling, alpha / sqrt(r)
    quantize: str | None = None  # "4bit" or "8bit": QLoRA on a base loaded through bitsandbytes (CUDA only)
    nproc: int = 1  # >1: torchrun with DDP (gloo on CPU, nccl on GPUs); a step takes nproc x grad_accum batches
    nnodes: int = 1  # >1: torchrun's multi-node rendezvous at rdzv_endpoint; nproc processes on each node
    rdzv_endpoint: str | None = None  # HOST:PORT of node 0 (its c10d store), the same on every node

    def __post_init__(self) -> None:
        checks = [
            (self.lora_r >= 1, "lora_r must be at least 1"),
            (self.lora_alpha >= 1, "lora_alpha must be at least 1"),
            (0.0 <= self.lora_dropout < 1.0, "lora_dropout must be in [0, 1)"),
            (0.0 < self.learning_rate <= 1.0, "learning_rate must be in (0, 1]"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (0.0 <= self.warmup_ratio < 1.0, "warmup_ratio must be in [0, 1)"),
            (0 < self.epochs <= 10_000, "epochs must be positive and at most 10000"),
            (0 <= self.seed <= 2**32 - 1, "seed must be between 0 and 4294967295"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be at least 1"),
            (1 <= self.batch_size <= 4096, "batch_size must be between 1 and 4096"),
            (1 <= self.grad_accum <= 1024, "grad_accum must be between 1 and 1024"),
            (8 <= self.max_seq_len <= 131072, "max_seq_len must be between 8 and 131072"),
            (self.eval_every is None or self.eval_every >= 1, "eval_every must be at least 1"),
            (self.save_every is None or self.save_every >= 1, "save_every must be at least 1"),
            (self.mode in MODES, f"mode must be {', '.join(MODES)}"),
            (1 <= self.nproc <= 64, "nproc must be between 1 and 64"),
            (1 <= self.nnodes <= 1024, "nnodes must be between 1 and 1024"),
            (
                self.nnodes == 1 or bool(self.rdzv_endpoint and ENDPOINT.match(self.rdzv_endpoint)),
                "nnodes above 1 needs rdzv_endpoint as HOST:PORT (node 0's address, the same on every node)",
            ),
            (0 <= self.eval_items <= 10_000, "eval_items must be between 0 and 10000"),
            (0.0 <= self.eval_fraction < 1.0, "eval_fraction must be at least 0 and below 1"),
            (self.quantize in (None, "4bit", "8bit"), "quantize must be 4bit or 8bit"),
        ]
        for ok, message in checks:
            if not ok:
                raise TunelabError(message)
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
        for key in ("target_modules", "modules_to_save"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise TunelabError(f"bad training settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("target_modules", "modules_to_save"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        return out

    def differences(self, other: TrainConfig) -> list[str]:
        """`field: old -> new` for every setting that differs (a resume must change none)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} -> {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

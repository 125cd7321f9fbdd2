"""The model options every command that loads a model accepts, with one meaning everywhere."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import TunelabError

DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ModelOptions:
    """Which model (and LoRA adapter) to load and how: the `--model --adapter --allow-pickle
    --trust-remote-code --dtype --device` set of the CLI, the TUI's launch options and the worker's load."""

    model: str = "demo"
    adapter: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    dtype: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise TunelabError("{0} must not be empty", "model")
        if self.dtype not in DTYPES:
            raise TunelabError(f"{{0}} must be one of {', '.join(DTYPES)}, got '{self.dtype}'", "dtype")
        if not DEVICE.match(self.device):
            raise TunelabError(f"{{0}} must be auto, cpu, mps, cuda or cuda:N, got '{self.device}'", "device")

    def numerics(self) -> str:
        """What besides the model's files decides its outputs: the dtype and device it runs in (an eval in
        bfloat16 is never served from a float32 one's cache, nor the other way round)."""
        return f"{self.dtype}@{self.device}"

    def load_kwargs(self) -> dict[str, Any]:
        """What `core.engine.loading.load` takes besides the model."""
        out = asdict(self)
        del out["model"], out["adapter"]
        return out

"""Sampling parameters, validated once so every error names the field at fault."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import TunelabError

MAX_NEW_TOKENS_LIMIT = 32768
TRUNCATE = ("left", "right", "skip")
MIN_TEMPERATURE = 0.01  # below this, logits / temperature overflow to inf and sampling gets NaN
MAX_SEED = 2**32 - 1  # what every seeding function accepts (torch, numpy, random)


@dataclass(frozen=True)
class GenParams:
    """How to decode: temperature 0 means greedy; seed makes sampling reproducible."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    min_new_tokens: int = 0  # > 0 keeps generating past the end-of-text token (fixed-length benchmarks)
    truncate: str = "left"  # a batched prompt over the context: cut its start (left), its end (right), or skip it

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise TunelabError(
                f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, got {self.max_new_tokens}"
            )
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise TunelabError(f"min_new_tokens must be between 0 and max_new_tokens, got {self.min_new_tokens}")
        if not (self.temperature == 0.0 or MIN_TEMPERATURE <= self.temperature <= 10.0):
            raise TunelabError(
                f"temperature must be 0 (greedy) or between {MIN_TEMPERATURE} and 10, got {self.temperature}"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise TunelabError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise TunelabError(f"top_k must be 0 (off) or positive, got {self.top_k}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise TunelabError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if self.truncate not in TRUNCATE:
            raise TunelabError(f"truncate must be {', '.join(TRUNCATE)}, got {self.truncate!r}")
        if any(not s for s in self.stop):
            raise TunelabError("stop strings must not be empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenParams:
        """Build from loosely typed input (CLI, TUI fields, JSON); unknown keys are an error."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key not in known:
                raise TunelabError(f"unknown parameter '{key}' (known: {', '.join(known)})")
            values[key] = _coerce(key, raw)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stop"] = list(self.stop)
        if not self.min_new_tokens:  # absent when unused: versions and cache keys made before it stay equal
            del out["min_new_tokens"]
        if self.truncate == "left":  # the same for the default truncation
            del out["truncate"]
        return out


def _coerce(key: str, raw: Any) -> Any:
    if key == "stop":
        if isinstance(raw, str):
            return (raw,) if raw else ()
        if isinstance(raw, (list, tuple)) and all(isinstance(s, str) for s in raw):
            return tuple(raw)
        raise TunelabError("stop must be a string or a list of strings")
    if key == "truncate":
        return str(raw)
    if key == "seed" and (raw is None or raw == ""):
        return None
    kind = int if key in {"max_new_tokens", "min_new_tokens", "top_k", "seed"} else float
    if isinstance(raw, bool):
        raise TunelabError(f"{key} must be a number, got {raw!r}")
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise TunelabError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if kind is int and isinstance(raw, float) and raw != value:
        raise TunelabError(f"{key} must be an integer, got {raw!r}")
    if kind is float and value != value:  # NaN
        raise TunelabError(f"{key} must be a number, got {raw!r}")
    return value

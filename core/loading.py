"""Load a model and tokenizer (torch side): safetensors only by default, no remote code unless asked."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import TunelabError
from core.modelref import ModelSource, resolve


@dataclass
class LoadedModel:
    source: ModelSource
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    load_s: float

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def info(self) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model.parameters())
        return {"model": self.source.label, "location": self.source.location, "device": self.device,
                "dtype": self.dtype, "chat_template": self.has_chat_template,
                "params_m": round(params / 1e6, 2), "load_s": round(self.load_s, 3)}


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str = "auto"):
    import torch

    if requested != "auto":
        try:
            return getattr(torch, requested)
        except AttributeError:
            raise TunelabError(f"unknown dtype '{requested}' (use auto, float32, float16 or bfloat16)") from None
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def load(spec: str, *, allow_pickle: bool = False, trust_remote_code: bool = False,
         device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load `spec`; every failure becomes a one-line TunelabError naming the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bar would garble the CLI's stdout/stderr and the worker log
    hf_logging.set_verbosity_error()
    source = resolve(spec, allow_pickle)
    start = time.monotonic()
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    common = {"trust_remote_code": trust_remote_code}
    if not source.local:
        common["local_files_only"] = _hub_offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **common)
        model = AutoModelForCausalLM.from_pretrained(
            source.location, dtype=torch_dtype, use_safetensors=None if allow_pickle else True, **common)
    except TunelabError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/EnvironmentError variously
        where = "folder" if source.local else "hub id"
        raise TunelabError(f"cannot load model {where} '{spec}': {_first_line(exc)}") from None
    model.to(dev).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(source, model, tokenizer, dev, str(torch_dtype).removeprefix("torch."),
                       time.monotonic() - start)


def _hub_offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

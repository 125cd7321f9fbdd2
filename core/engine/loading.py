"""Load a model and tokenizer (torch side): safetensors only by default, no remote code unless asked."""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.engine.modelref import ModelSource, resolve
from core.engine.prompt import has_chat_template
from core.engine.protocol import ModelInfo
from core.errors import TunelabError


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
        return has_chat_template(self.tokenizer)

    def info(self) -> ModelInfo:
        params = sum(p.numel() for p in self.model.parameters())
        return ModelInfo(
            model=self.source.spec,
            location=self.source.location,
            device=self.device,
            dtype=self.dtype,
            chat_template=self.has_chat_template,
            params_m=round(params / 1e6, 2),
            load_s=round(self.load_s, 3),
            linear_modules=linear_module_names(self.model),
        )


def linear_module_names(model) -> list[str]:
    """Names of the layers LoRA can adapt: linear layers and GPT-2's Conv1D (what peft accepts)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, Conv1D)
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, kinds)})


def module_names_from_config(spec: str, trust_remote_code: bool = False) -> list[str] | None:
    """The LoRA targets of `spec`, from its config alone (built on the meta device: no weights read, no
    memory), so a bad `--target-modules` is refused before a run exists; None when the config is not at hand."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    source = resolve(spec, allow_pickle=True)
    try:
        config = AutoConfig.from_pretrained(source.location, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception:  # offline hub id, custom code: the run's own check will say
        return None
    return linear_module_names(model)


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


def load(
    spec: str,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    quantize: str | None = None,
) -> LoadedModel:
    """Load `spec`; every failure becomes a one-line TunelabError naming the model.

    A hub id is looked up in the local cache first (works offline); the network is only tried when
    the hub answers a quick probe, so an offline machine gets an error in seconds, not after retries.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bar would garble the CLI's stdout/stderr and the worker log
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecations are not the user's
    source = resolve(spec, allow_pickle)
    start = time.monotonic()
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    options = {
        "trust_remote_code": trust_remote_code,
        "dtype": torch_dtype,
        "use_safetensors": None if allow_pickle else True,
    }
    if quantize:
        options["quantization_config"] = _bnb_config(quantize, dev, torch_dtype)
    where = "folder" if source.local else "hub id"
    try:
        if source.local:
            tokenizer, model = _from_pretrained(source.location, **options)
        else:
            tokenizer, model = _from_hub(source.location, **options)
    except TunelabError as exc:
        raise TunelabError(f"cannot load model {where} '{spec}': {exc}") from None
    except Exception as exc:  # transformers raises OSError/ValueError/EnvironmentError variously
        raise TunelabError(f"cannot load model {where} '{spec}': {_first_line(exc)}") from None
    if not quantize:  # a bitsandbytes model is placed on the GPU as it loads, and cannot be moved
        model.to(dev)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(source, model, tokenizer, dev, str(torch_dtype).removeprefix("torch."), time.monotonic() - start)


def _from_pretrained(
    location: str, *, dtype, use_safetensors, trust_remote_code, local_files_only=False, quantization_config=None
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
    tokenizer = AutoTokenizer.from_pretrained(location, **common)
    extra = {"quantization_config": quantization_config, "device_map": {"": 0}} if quantization_config else {}
    model = AutoModelForCausalLM.from_pretrained(
        location, dtype=dtype, use_safetensors=use_safetensors, **common, **extra
    )
    return tokenizer, model


def _bnb_config(quantize: str, device: str, compute_dtype):
    """QLoRA's base: 4-bit NF4 (double quantized) or 8-bit weights, computing in `compute_dtype`."""
    import importlib.util

    if device != "cuda" or importlib.util.find_spec("bitsandbytes") is None:
        raise TunelabError(f"{{0}} needs bitsandbytes and a CUDA GPU (this device: {device})", f"load_in_{quantize}")
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def _from_hub(hub_id: str, **options):
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings are many lines; the error below is one
    try:
        return _from_pretrained(hub_id, local_files_only=True, **options)
    except OSError:
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
            raise TunelabError("not in the local cache and HF_HUB_OFFLINE is set") from None
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not _reachable(endpoint):
        raise TunelabError(f"not in the local cache and the hub ({endpoint}) cannot be reached")
    return _from_pretrained(hub_id, **options)


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

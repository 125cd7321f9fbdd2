"""LoRA dropout with a cheaper mask on CPU. peft's `nn.Dropout` draws one random number per element
(`bernoulli_`, about 5 ns each on CPU): a quarter of a LoRA step on small models. This draws 64 random
bits per four elements and reads each 16 bits as a uniform, so the keep probability is the same to
1/65536 and the scale makes the layer's expectation exact. Imported only by the training loop."""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16


class CheapDropout(nn.Module):
    """Inverted dropout (identity in eval mode), as `nn.Dropout(p)`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        dropped = round(p * _LEVELS)
        self.threshold = dropped - _LEVELS // 2  # an int16 at or above it keeps its element
        self.scale = _LEVELS / (_LEVELS - dropped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return torch.where(keep, x, 0.0) * self.scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


def cheapen_lora_dropout(model: nn.Module, device: str) -> int:
    """Swaps every LoRA layer's `nn.Dropout` for `CheapDropout` when training on CPU (CUDA's fused dropout
    kernel is already cheap); returns how many were swapped."""
    if device != "cpu":
        return 0
    swapped = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if not isinstance(drops, nn.ModuleDict):
            continue
        for name, drop in list(drops.items()):
            if type(drop) is nn.Dropout:
                drops[name] = CheapDropout(drop.p)
                swapped += 1
    return swapped

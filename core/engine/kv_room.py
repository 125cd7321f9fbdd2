"""A shared prefix's key/value cache repeated over a batch into buffers with room for what follows.

transformers' `DynamicLayer` grows by `torch.cat`, so every forward step copies the whole cache, the repeated
prefix included: with 8 demonstrations (~400 tokens) in front of every item that copy, not the matmuls, is what
makes a k-shot eval slow on CPU. Here each plain dynamic layer is repeated once into a buffer with room for
the suffixes and the new tokens, and its updates write the next positions in place; past the room, or once
its tensors are replaced (a beam reorder), it grows as `DynamicLayer` does. torch and transformers are imported
only when a cache is reserved."""

from __future__ import annotations

import functools
from typing import Any


def reserve(cache: Any, batch: int, room: int) -> bool:
    """Repeat `cache` (batch 1) over `batch` rows with `room` free positions after it, in place; False (the
    cache untouched) when any of its layers is not a plain dynamic one (sliding windows, quantized caches)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in layers):
        return False
    reserved = _reserved_layer()
    for layer in layers:
        for name in ("keys", "values"):
            prefix = getattr(layer, name)
            size, length = list(prefix.shape), prefix.shape[-2]
            size[0], size[-2] = batch, length + room
            buffer = torch.empty(size, dtype=prefix.dtype, device=prefix.device)
            buffer[:, :, :length] = prefix  # broadcast over the batch: the one copy repeat_interleave makes
            setattr(layer, f"room_{name}", buffer)
            setattr(layer, name, buffer[:, :, :length])
        layer.__class__ = reserved
    return True


@functools.cache
def _reserved_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A dynamic layer whose keys and values are views of buffers with room: an update fills the next
        positions in place."""

        keys: Any
        values: Any
        room_keys: Any
        room_values: Any

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            used, new = self.keys.shape[-2], key_states.shape[-2]
            fits = used + new <= self.room_keys.shape[-2] and key_states.shape[0] == self.room_keys.shape[0]
            if not (fits and self.keys.data_ptr() == self.room_keys.data_ptr()):  # out of room, or replaced
                return super().update(key_states, value_states, *args, **kwargs)
            self.room_keys[:, :, used : used + new] = key_states
            self.room_values[:, :, used : used + new] = value_states
            self.keys = self.room_keys[:, :, : used + new]
            self.values = self.room_values[:, :, : used + new]
            return self.keys, self.values

    return ReservedLayer

"""A shared prefix's cache repeated into buffers with room: every update gives exactly the keys and values that
transformers' own growing cache gives, in place while there is room, and as before past it."""

import pytest
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from core.engine.kv_room import reserve

LAYERS, HEADS, DIM, PREFIX = 2, 3, 4, 5


def prefix_cache(seed: int = 0) -> DynamicCache:
    generator = torch.Generator().manual_seed(seed)
    cache = DynamicCache()
    for layer in range(LAYERS):
        k, v = (torch.randn(1, HEADS, PREFIX, DIM, generator=generator) for _ in range(2))
        cache.update(k, v, layer)
    return cache


@pytest.mark.parametrize("room", [0, 3, 9])
def test_updates_give_what_the_growing_cache_gives_in_room_and_past_it(room):
    ours, theirs = prefix_cache(), prefix_cache()
    assert reserve(ours, 4, room)
    theirs.batch_repeat_interleave(4)
    generator = torch.Generator().manual_seed(1)
    for step in (3, 1, 1, 1):  # the suffixes, then one token at a time: 6 positions, past a room of 3
        for layer in range(LAYERS):
            k, v = (torch.randn(4, HEADS, step, DIM, generator=generator) for _ in range(2))
            got, want = ours.update(k, v, layer), theirs.update(k, v, layer)
            assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert ours.get_seq_length() == theirs.get_seq_length() == PREFIX + 6
    in_place = ours.layers[0].keys.data_ptr() == ours.layers[0].room_keys.data_ptr()
    assert in_place == (room >= 6)  # within the room: never copied out of the buffer


def test_a_layer_whose_tensors_were_replaced_grows_as_before():
    cache = prefix_cache()
    prefix = cache.layers[0].keys.clone()
    assert reserve(cache, 2, 4)
    cache.batch_select_indices(torch.tensor([1]))  # a beam reorder replaces the tensors: the buffer is not used
    keys, _ = cache.update(torch.ones(1, HEADS, 1, DIM), torch.ones(1, HEADS, 1, DIM), 0)
    assert keys.shape == (1, HEADS, PREFIX + 1, DIM) and torch.equal(keys[:, :, :PREFIX], prefix)
    assert keys.data_ptr() != cache.layers[0].room_keys.data_ptr()


def test_a_cache_of_other_layers_is_left_to_the_plain_path():
    cache = prefix_cache()
    cache.layers[1].__class__ = type("Sliding", (DynamicLayer,), {})
    assert not reserve(cache, 3, 4)
    assert cache.layers[0].keys.shape[0] == 1 and type(cache.layers[0]) is DynamicLayer  # untouched

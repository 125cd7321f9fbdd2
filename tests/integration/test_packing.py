"""Padding-free packing: a batch packed several examples per row gives the loss it gives padded, within 1e-4,
on the demo model and tiny models of real families (their attention keeps packed examples apart)."""

import pytest

from core.engine.loading import load
from core.training.config import TrainConfig
from core.training.data import Example, collate, collate_packed, pack
from core.training.loop import packing_holds
from tests.tiny_models import FAMILIES

pytestmark = pytest.mark.slow


def examples(vocab: int, lengths=(5, 17, 3, 30, 9, 12, 26, 4)) -> list[Example]:
    import random

    rng = random.Random(0)
    out = []
    for n in lengths:
        ids = [rng.randrange(10, vocab) for _ in range(n)]
        answer = max(1, n // 3)  # the last third is the answer: loss there only, as training takes it
        out.append(Example(ids, [-100] * (n - answer) + ids[n - answer :]))
    return out


def losses(model, data, pad_id, width):
    import torch

    batch = list(range(len(data)))
    model.eval()
    with torch.no_grad():
        ids, labels, mask = collate(data, batch, pad_id)
        padded = model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
        ids, labels, positions = collate_packed(data, batch, pad_id, width)
        packed = model(input_ids=ids, position_ids=positions, labels=labels, use_cache=False).loss.item()
    return padded, packed, ids.shape


@pytest.mark.parametrize("family", ["demo", *[f.name for f in FAMILIES]])
def test_a_packed_batch_gives_the_padded_loss(family, tiny_models):
    loaded = load("demo" if family == "demo" else str(tiny_models[family]))
    data = examples(loaded.model.config.vocab_size)
    padded, packed, shape = losses(loaded.model, data, loaded.tokenizer.pad_token_id or 0, 64)
    assert shape[0] < len(data)  # several examples share a row
    assert packed == pytest.approx(padded, abs=1e-4)


def test_packing_is_checked_before_a_run_uses_it_and_a_model_that_mixes_examples_trains_padded(tiny_models):
    loaded = load(str(tiny_models["llama2"]))
    data, pad = examples(loaded.model.config.vocab_size), loaded.tokenizer.pad_token_id or 0
    config = TrainConfig(max_seq_len=64)
    assert packing_holds(loaded.model, data, pad, config, "cpu")

    class Mixing:  # an attention that ignores the restarting position ids: packed examples see each other
        training = False

        def eval(self):
            return self

        def train(self, mode=True):
            return self

        def __call__(self, position_ids=None, **kwargs):
            return loaded.model(**kwargs)

    assert not packing_holds(Mixing(), data, pad, config, "cpu")


def test_first_fit_decreasing_fills_rows_up_to_the_width():
    data = examples(100, lengths=(30, 30, 20, 10, 10, 60))
    rows = pack(data, list(range(6)), 60)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum(len(data[i].ids) for i in row) <= 60 for row in rows) and len(rows) == 3

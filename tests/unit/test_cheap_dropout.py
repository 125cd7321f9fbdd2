"""The training loop's LoRA dropout: the same law as `nn.Dropout` (keep rate, unbiased, identity in eval,
gradient through the kept elements only) and swapped into every LoRA layer on CPU."""

import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from core.training.dropout import CheapDropout, cheapen_lora_dropout


def test_keeps_each_element_with_probability_one_minus_p_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = CheapDropout(0.1).train()
    x = torch.ones(64, 129, 33)  # an odd count: the last int64's spare bits are cut off
    y = drop(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9), rtol=1e-4)


def test_masks_differ_between_calls_and_follow_the_seed():
    x = torch.ones(4096)
    torch.manual_seed(1)
    first, second = CheapDropout(0.5)(x), CheapDropout(0.5)(x)
    torch.manual_seed(1)
    again = CheapDropout(0.5)(x)
    assert not torch.equal(first, second)
    assert torch.equal(first, again)


def test_is_the_identity_in_eval_mode_and_at_zero():
    x = torch.randn(8, 16)
    assert CheapDropout(0.3).eval()(x) is x
    assert CheapDropout(0.0)(x) is x


def test_the_gradient_flows_through_kept_elements_only():
    x = torch.randn(32, 64, requires_grad=True)
    y = CheapDropout(0.25)(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75), rtol=1e-4)
    assert torch.count_nonzero(x.grad[~kept]) == 0


def test_every_lora_dropout_is_swapped_on_cpu_only(demo_loaded):
    import copy

    model = get_peft_model(
        copy.deepcopy(demo_loaded.model),
        LoraConfig(r=4, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    plain = copy.deepcopy(model)
    layers = [m for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict)]
    assert cheapen_lora_dropout(model, "cuda") == 0
    assert cheapen_lora_dropout(model, "cpu") == len(layers) > 0
    assert all(isinstance(m.lora_dropout["default"], CheapDropout) for m in layers)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    model.eval(), plain.eval()
    with torch.no_grad():  # in eval mode the swapped model computes what peft's does
        assert torch.equal(model(input_ids=ids).logits, plain(input_ids=ids).logits)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)

"""An adapter is checked when the eval is planned, from its files alone (no torch): a damaged config or
weights file, or LoRA matrices that do not fit the base model's modules, are refused in one line, and the
refused command leaves the data dir as it was."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.errors import TunelabError
from core.evals.plan import EvalRequest, Variant
from core.workbench.service import Workbench
from tests.unit.test_evals import PROMPT, ScriptedBackend

PREFIX = "base_model.model.model.layers.0.self_attn.q_proj"


def base_model(folder, hidden=16):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": hidden}))
    save_file(
        {"model.layers.0.self_attn.q_proj.weight": np.zeros((hidden, hidden), np.float32)}, folder / "model.safetensors"
    )
    return str(folder)


def adapter(folder, hidden=16, base="a-base", weights=None, config=None):
    folder.mkdir()
    (folder / "adapter_config.json").write_text(config or json.dumps({"base_model_name_or_path": base, "r": 4}))
    if weights is not None:
        (folder / "adapter_model.safetensors").write_bytes(weights)
    else:
        tensors = {
            f"{PREFIX}.lora_A.weight": np.zeros((4, hidden), np.float32),
            f"{PREFIX}.lora_B.weight": np.zeros((hidden, 4), np.float32),
        }
        save_file(tensors, folder / "adapter_model.safetensors")
    return str(folder)


def files(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "wider",
            r"was trained on wider-base, not on the model .*; first mismatch: base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight$",
        ),
        ("garbage weights", r"adapter_model\.safetensors: not a readable safetensors file"),
        ("garbage config", r"adapter_config\.json is not readable JSON"),
    ],
)
def test_a_bad_adapter_is_refused_before_the_eval_exists(home, tmp_path, kind, message):
    model = base_model(tmp_path / "base")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"t{i}", "expected": "positive"}) + "\n" for i in range(6)))
    workbench = Workbench(home)
    request = EvalRequest(str(data), "auto", grader="labels")
    good = adapter(tmp_path / "good")
    workbench.run_eval(request, [Variant("senti", PROMPT, model, good)], ScriptedBackend())  # a fitting one runs
    bad = {
        "wider": lambda: adapter(tmp_path / "bad", hidden=32, base="wider-base"),
        "garbage weights": lambda: adapter(tmp_path / "bad", weights=b"garbage, not tensors"),
        "garbage config": lambda: adapter(tmp_path / "bad", config="{not json"),
    }[kind]()
    before = files(home)
    with pytest.raises(TunelabError, match=message) as caught:
        workbench.run_eval(request, [Variant("senti", PROMPT, model, bad)], ScriptedBackend())
    assert "\n" not in str(caught.value)
    assert files(home) == before  # no plan, no partial results, no lock, no cache shard, no history

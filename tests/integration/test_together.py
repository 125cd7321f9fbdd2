"""`compare --distill` on the demo model, for real: the prompt's passing outputs on training rows become a dataset,
a LoRA trains on it (the feature's one real training run, a few steps) and is graded with no prompt beside it."""

import json

import pytest

from core.data.prompts import read_prompt_file
from core.storage.runfolders import read_ledger
from core.training.runs import Runs
from tests.conftest import here

pytestmark = pytest.mark.slow
SENTI = 'name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n[params]\nmax_new_tokens = 4\n'


def test_compare_distill_trains_on_the_prompts_passing_outputs_and_grades_the_lora_with_no_prompt(tmp_path, capsys):
    from core.data.datasets import load_dataset

    prompt = tmp_path / "senti.toml"
    prompt.write_text(SENTI)
    label = f"senti@{read_prompt_file(prompt)[1].id[:6]} raw"
    done = here(
        capsys, "compare", "--distill", str(prompt), "--trace-rows", "32", "--train-epochs", "1", "--limit", "16",
        "--json", "--report", str(tmp_path / "report.md"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"distill: {label} passed " in done.stderr and " of 32 training rows" in done.stderr
    grid = json.loads(done.stdout)["grid"]
    assert [(r["kind"], r["stage"]) for r in grid["rows"]] == [("base", ""), ("distilled", f"distilled from {label}")]
    assert [(c["row"], c["col"]) for c in grid["cells"]] == [(0, 0), (0, 1), (1, 0)]  # no prompt with the LoRA
    lora = grid["rows"][1]["adapters"][0]
    assert grid["rows"][1]["cost"]["train_tokens"] > 0 and grid["rows"][1]["cost"]["train_s"] > 0
    report = (tmp_path / "report.md").read_text()
    assert f"distilled from {label}: " in report and " prompt tokens per call saved; break-even after " in report
    runs = Runs(tmp_path / "home")
    train = {it.digest[:16] for it in load_dataset("demo").split("train")}
    ledger = read_ledger(runs.path(lora))
    assert ledger and ledger <= train  # ledgered as the demo's own training rows

"""`tunelab compare`: the whole question in one command, trained, graded and judged, headless."""

import json

import pytest

from tests.conftest import tunelab

pytestmark = pytest.mark.slow
SENTI = 'name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n[params]\nmax_new_tokens = 4\n'


def test_compare_trains_both_loras_grades_every_cell_and_gives_the_verdict(tmp_path, home):
    prompt = tmp_path / "senti.toml"
    prompt.write_text(SENTI)
    done = tunelab(
        "compare", "--prompt", str(prompt), "--train", "--train-with-prompt", "--train-epochs", "1",
        "--limit", "30", "--json", home=home, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    cells = [(v["prompt_name"], v["adapter"] is not None) for v in report["variants"]]
    assert cells == [(None, False), ("senti", False), (None, True), ("senti", True), (None, True), ("senti", True)]
    verdict = report["verdict"]
    assert verdict["sentence"].endswith(f"of {verdict['n_items']} items).") and 0 <= verdict["p_value"] <= 1
    assert report["variants"][verdict["winner"]]["pass_rate"] == max(v["pass_rate"] for v in report["variants"])
    assert len(report["warnings"]) == 2  # each LoRA used once with a format it was not trained on
    assert any("trained as is (no prompt), here used with this prompt" in w for w in report["warnings"])


def test_compare_refuses_training_with_a_prompt_it_was_not_given(home):
    done = tunelab("compare", "--train-with-prompt", home=home)
    assert done.returncode == 2 and "--train-with-prompt needs at least one --prompt" in done.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())

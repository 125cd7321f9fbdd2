"""`tunelab compare`: the whole question in one command, trained, graded and judged, headless."""

import json

import pytest

from tests.conftest import here, tunelab

pytestmark = pytest.mark.slow
SENTI = 'name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n[params]\nmax_new_tokens = 4\n'


def test_compare_trains_both_loras_grades_every_cell_and_gives_the_verdict(tmp_path, capsys):
    prompt = tmp_path / "senti.toml"
    prompt.write_text(SENTI)
    done = here(
        capsys, "compare", "--prompt", str(prompt), "--train", "--train-with-prompt", "--train-epochs", "0.1",
        "--limit", "30", "--json", "--report", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    cells = [(v["prompt_name"], v["adapter"] is not None) for v in report["variants"]]
    assert cells == [(None, False), ("senti", False), (None, True), ("senti", True), (None, True), ("senti", True)]
    verdict = report["verdict"]
    assert (
        f"of {verdict['n_items']} items" in verdict["sentence"]
        and verdict["sentence"].endswith(").")
        and 0 <= verdict["p_value"] <= 1
    )
    grid = report["grid"]
    winner = next(c for c in grid["cells"] if [c["row"], c["col"]] == verdict["winner"])
    assert winner["pass_rate"] == max(v["pass_rate"] for v in report["variants"])
    assert [r["trained_on"] for r in grid["rows"]] == [None, "as is", f"{grid['columns'][1]['label']}"]
    assert [c["label"].split("@")[0] for c in grid["columns"]] == ["no prompt", "senti"]
    for row in grid["rows"][1:]:  # what each LoRA cost
        assert row["cost"]["train_s"] > 0 and row["cost"]["trainable_params"] > 0 and row["cost"]["adapter_mb"] > 0
        assert row["cost"]["device"] == "cpu"
    assert grid["columns"][1]["cost"]["extra_prompt_tokens"] > 0  # the prompt's cost: tokens on every call
    assert report["tried"] == {"versions": 1, "loras": 2, "evals": 1, "sealed": False, "models": 1}
    assert len(report["warnings"]) == 3  # the selection, and each LoRA used once with a format it was not trained on
    assert any("trained as is (no prompt), here used with this prompt" in w for w in report["warnings"])
    page = (tmp_path / "report.html").read_text()
    assert verdict["sentence"].split(":")[0] in page and f"{report['variants'][0]['pass_rate'] * 100:.1f}%" in page
    assert page.count("<svg") == 2  # the pass-rate bars and the two LoRAs' loss curves


def test_compare_refuses_training_with_a_prompt_it_was_not_given(home):
    done = tunelab("compare", "--train-with-prompt", home=home)
    assert done.returncode == 2 and "--train-with-prompt needs at least one --prompt" in done.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_the_report_holds_the_grid_and_the_verdict(tmp_path):
    from html.parser import HTMLParser

    from core.evals.grid import build_grid
    from core.evals.report import write_report
    from core.storage.schemas import EvalSummary

    summary = EvalSummary.model_validate({
        "id": "e1", "created_at": "2026-12-01T00:00:00", "status": "done", "dataset": "demo", "split": "eval",
        "grader": "labels",
        "variants": [
            {"label": "no prompt | demo", "pass_rate": 0.0, "ci": [0.0, 0.03], "trials": 120, "model": "demo",
             "mean_latency_s": 0.002, "mean_completion_tokens": 1.4, "mean_prompt_tokens": 20.0},
            {"label": "senti@150f96 raw | demo", "pass_rate": 0.783, "ci": [0.702, 0.848], "trials": 120,
             "model": "demo", "prompt_id": "150f96aa", "prompt_name": "senti", "mode": "raw",
             "mean_latency_s": None, "mean_completion_tokens": None, "mean_prompt_tokens": 26.0},
        ],
        "items": {"0": {"i1": {"passed": False}}, "1": {"i1": {"passed": True}}},
    })  # fmt: skip
    grid = build_grid(summary)
    sentence = "The prompt alone wins (senti@150f96 raw | demo): 78.3% vs 0.0% ..."
    texts: list[str] = []

    class Texts(HTMLParser):
        def handle_data(self, data):
            texts.append(data)

    page = write_report(tmp_path / "r.html", summary, grid, sentence, ["a <note>"]).read_text()
    Texts().feed(page)
    assert "78.3% [70-85] · cached 26+? tok" in texts and sentence in texts and "a <note>" in texts
    assert "senti@150f96 raw: +6 prompt tokens per call" in texts and "<svg" in page
    markdown = write_report(tmp_path / "r.md", summary, grid, sentence, []).read_text()
    assert "| demo (base) | 0.0% [0-3] · 2 ms 20+1 tok | 78.3% [70-85] · cached 26+? tok |" in markdown
    assert "data:image/svg+xml;base64," in markdown

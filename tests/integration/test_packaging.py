"""A non-editable wheel carries everything the app needs: code, stylesheet, themes, demo model."""

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO, subprocess_env


@pytest.mark.slow
def test_wheel_is_complete_and_runs_without_the_checkout(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("tunelab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "tui/app.tcss",
        "themes/tunelab-dark.toml",
        "themes/tunelab-high-contrast.toml",
        "core/demo/model/model.safetensors",
        "core/demo/model/tokenizer.json",
        "core/demo/data/sentiment/train.jsonl",
        "core/demo/data/sentiment/eval.jsonl",
    ):
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tunelab = tui.launcher:main" in zipfile.ZipFile(wheel).read(entry).decode()

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    check = (
        "import core, tui.app, tui.themes; from core.engine.modelref import resolve\n"
        f"assert core.__file__.startswith({str(site)!r}), core.__file__\n"
        "assert len(tui.themes.shipped_themes()) >= 3\n"
        "print(resolve('demo').location)"
    )
    env = subprocess_env(PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(site))

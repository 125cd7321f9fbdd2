"""Shared fixtures: a private TUNELAB_HOME and config dir per test, no hub access, the demo model loaded once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs a worker per core), each worker and every process it starts keep
    to cores of their own: torch in two processes sharing two cores spins its threads against the other's
    (a 25 s test took 460 s so). Processes take their thread counts from the affinity (`usable_cores`)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker and count > 1 and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= count:
            os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw")) % count :: count])


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """Every test writes into its own data dir and can never reach a model hub."""
    root = tmp_path / "home"
    monkeypatch.setenv("TUNELAB_HOME", str(root))
    monkeypatch.setenv("TUNELAB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return root


@pytest.fixture(scope="session")
def demo_loaded():
    from core.engine.loading import load

    return load("demo")


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A writable copy of the demo model folder, to damage in tests."""
    from core import demo

    dst = tmp_path / "model"
    shutil.copytree(demo.MODEL_DIR, dst)
    return dst


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def tunelab(*args, home, stdin=None, env=None, timeout=120):
    """The CLI as a user runs it: a subprocess with its own exit code and streams."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tui.launcher", *args],
        cwd=REPO,
        input=stdin,
        env=subprocess_env(TUNELAB_HOME=str(home), HF_HUB_OFFLINE="1", **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny random model per family in `tests.tiny_models`, built once per test session."""
    from tests.tiny_models import FAMILIES, build

    root = tmp_path_factory.mktemp("tiny-models")
    return {f.name: build(f, root / f.name) for f in FAMILIES}


class Ran:
    def __init__(self, code, captured):
        self.returncode, self.stdout, self.stderr = code, captured.out, captured.err


def here(capsys, *args):
    """The command line in this process (torch is loaded once for the file): exit code and streams."""
    from tui.cli.main import main

    capsys.readouterr()
    return Ran(main(list(args)), capsys.readouterr())

"""The TUI process must never import the ML stack, and core must never import Textual."""

import json
import subprocess
import sys

from tests.conftest import REPO, subprocess_env

HEAVY = ("torch", "transformers", "peft")
LATER = ("jsonschema", "rapidfuzz", "tomlkit", "pyarrow", "watchfiles")  # loaded when a feature needs them


def imported_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_tui_app_leaves_the_ml_stack_out():
    mods = imported_after("import core, tui.app, tui.launcher\napp = tui.app.TunelabApp")
    assert not [m for m in HEAVY if m in mods]
    assert not [m for m in LATER if m in mods]  # nothing on the way to the first frame
    assert "textual" in mods


def test_the_first_frame_imports_no_use_case_or_screen_module():
    """Startup (bench: TUI start to first frame) pays only for what the first frame shows (the main screen);
    the rest is imported by a thread worker after it (`tui.app.LATER`)."""
    mods = imported_after("import tui.app") - {"tui.screens", "tui.screens.main"}
    later = (
        "core.evals",
        "core.data",
        "core.workbench",
        "core.training",
        "core.history",
        "core.engine.client",
        "tui.screens",
    )
    assert not [m for m in mods if m.startswith(later)]
    assert "core.engine.protocol" not in mods and "tui.palette" not in mods


def test_core_client_side_never_imports_textual_or_rich_or_torch():
    mods = imported_after(
        "import core, core.workbench.service, core.history.store, core.engine.client, "
        "core.engine.protocol, core.engine.worker, core.engine.host, core.evals.runner, "
        "core.training.runs, core.history.records"
    )
    assert not [m for m in (*HEAVY, "textual", "rich") if m in mods]


def test_the_command_line_starts_without_textual_or_torch():
    mods = imported_after("import tui.launcher, tui.cli.main")
    assert not [m for m in (*HEAVY, "textual") if m in mods]


def test_the_training_child_never_imports_the_eval_engine():
    """Training and evals are independent (the layers contract); the child process a run lives in loads
    the loop, its data and the model, never the eval runner."""
    mods = imported_after("import core.training.__main__, core.training.loop, core.training.data")
    assert not [m for m in mods if m.startswith("core.evals")]
    assert "core.data.datasets" in mods

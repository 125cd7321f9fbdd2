"""Two writers at once, as two terminals do it: nothing lost, nothing duplicated, nobody waits forever."""

import json
import subprocess
import sys

import pytest

from core.history.store import History
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def run_both(script: str, *args: str, home) -> None:
    """`script` in two processes started together; both must succeed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(home), *args],
            cwd=REPO,
            env=subprocess_env(TUNELAB_HOME=str(home)),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]


def test_two_imports_of_one_file_add_each_record_once(tmp_path, home):
    source = tmp_path / "source"
    History(source).add_many({"kind": "generation", "prompt": f"p{i}", "output": "o"} for i in range(250))
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in History(source).recent(1000)))
    script = (
        "import sys\nfrom pathlib import Path\nfrom core.history.io import import_history\n"
        "from core.history.store import History\nimport_history(History(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    run_both(script, str(export), home=home)
    assert len(History(home).ids()) == 250 and len(History(home).recent(1000)) == 250


def test_two_taggers_on_one_record_lose_no_tag(home):
    record_id = History(home).add({"kind": "generation", "prompt": "p", "output": "o"})
    script = (
        "import os, sys\nfrom core.history.store import History\nh = History(sys.argv[1])\n"
        "for i in range(40):\n    h.update(sys.argv[2], add_tags=[f'{os.getpid()}-{i}'])\n"
    )
    run_both(script, record_id, home=home)
    assert len(History(home).get(record_id)["tags"]) == 80


def test_every_file_tunelab_writes_is_the_users_alone(tmp_path, home):
    """gen, eval, train, merge and export, then a walk of the data and config dirs: 0600 files, 0700 folders."""
    import stat

    from tests.conftest import tunelab

    config = tmp_path / "config"
    env = {"TUNELAB_CONFIG_DIR": str(config)}
    steps = [
        ("gen", "Anna was a", "--raw", "--max-new-tokens", "4"),
        ("eval", "--no-prompt", "--limit", "4"),
        ("train", "--max-steps", "2", "--eval-every", "1", "--save-every", "1", "--batch-size", "4"),
        ("history", "export", "--out", str(home / "export.jsonl")),
    ]
    for args in steps:
        done = tunelab(*args, home=home, env=env, timeout=300)
        assert done.returncode == 0, (args, done.stderr[-1500:])
    run_id = next((home / "runs").iterdir()).name
    done = tunelab("adapters", "merge", run_id, "--out", str(home / "merged"), home=home, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    wide = []
    for root in (home, config):
        for path in [root, *root.rglob("*")] if root.exists() else []:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                continue
            if mode & 0o077:
                wide.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    assert not wide, wide

"""Loading by hub id without a network: the cache is used, and a miss fails fast in one line."""

import shutil
import subprocess
import sys

import pytest

from core import demo
from core.engine.loading import load
from core.errors import TunelabError
from tests.conftest import REPO, subprocess_env


def test_hub_id_offline_and_not_cached_is_one_line_error():
    with pytest.raises(TunelabError) as info:
        load("tunelab-test/does-not-exist")
    assert str(info.value) == (
        "cannot load model hub id 'tunelab-test/does-not-exist': not in the local cache and HF_HUB_OFFLINE is set"
    )


def test_unreachable_hub_fails_fast_without_retries(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # loopback discard port: refused at once
    with pytest.raises(TunelabError, match=r"the hub \(http://127.0.0.1:9\) cannot be reached$"):
        load("tunelab-test/absent")


@pytest.mark.slow
def test_hub_id_loads_from_the_local_cache_offline(tmp_path):
    cache = tmp_path / "hf" / "hub"
    entry = cache / "models--tunelab-test--cached"
    shutil.copytree(demo.MODEL_DIR, entry / "snapshots" / ("0" * 40))
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0" * 40)
    code = (
        "from core.engine.loading import load; m = load('tunelab-test/cached'); print(m.source.local, m.info().model)"
    )
    # huggingface_hub reads its cache location once, at import: a fresh process sees this one
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=subprocess_env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1"),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "tunelab-test/cached"]

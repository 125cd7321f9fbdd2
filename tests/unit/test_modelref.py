import pytest

from core import demo
from core.engine.modelref import fingerprint, resolve
from core.errors import TunelabError


def test_demo_alias_resolves_to_the_shipped_folder():
    src = resolve("demo")
    assert src.local and src.location == str(demo.MODEL_DIR.resolve())


def test_hub_ids_are_not_mistaken_for_folders():
    assert not resolve("org/some-model").local
    assert not resolve("gpt2").local


def test_a_hub_models_fingerprint_follows_the_revision_in_the_local_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    source = resolve("org/tiny-model")
    assert fingerprint(source) == "hub:org/tiny-model@not cached"
    repo = tmp_path / "models--org--tiny-model"
    prints = []
    for commit in ("a1b2c3", "d4e5f6"):  # the hub repo was updated and fetched again
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        prints.append(fingerprint(source))
    assert prints == ["hub:org/tiny-model@a1b2c3", "hub:org/tiny-model@d4e5f6"]  # old outputs are not reused


def test_missing_folder(tmp_path):
    with pytest.raises(TunelabError, match="model folder not found: .*nope"):
        resolve(str(tmp_path / "nope"))


def test_a_file_is_not_a_model_folder(tmp_path):
    f = tmp_path / "weights.txt"
    f.write_text("x")
    with pytest.raises(TunelabError, match="it is a file"):
        resolve(str(f))


def test_folder_without_config(tmp_path):
    with pytest.raises(TunelabError, match="no config.json"):
        resolve(str(tmp_path))


def test_pickle_only_weights_are_refused_unless_allowed(model_copy):
    (model_copy / "model.safetensors").rename(model_copy / "pytorch_model.bin")
    with pytest.raises(TunelabError, match="pickle weights .*--allow-pickle"):
        resolve(str(model_copy))
    assert resolve(str(model_copy), allow_pickle=True).local


def test_folder_without_weights(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(TunelabError, match=r"no model weights \(\*.safetensors\)"):
        resolve(str(model_copy))


def test_errors_are_one_line(tmp_path):
    with pytest.raises(TunelabError) as info:
        resolve(str(tmp_path / "a\nb"))
    assert "\n" not in str(info.value)


def test_a_merge_finds_the_stored_dtype_whatever_names_the_base(tmp_path, monkeypatch):
    """`merge` keeps the base's dtype: read from the folder, the `demo` alias's folder or the hub cache."""
    from huggingface_hub import constants

    from core.training.adapters import stored_dtype

    folder = tmp_path / "bf16"
    folder.mkdir()
    (folder / "config.json").write_text('{"dtype": "bfloat16"}')
    (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(demo, "MODEL_DIR", folder)
    snapshot = tmp_path / "hub" / "models--org--half" / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"torch_dtype": "float16"}')
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("c0ffee")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert [stored_dtype(b) for b in (str(folder), "demo", "org/half")] == ["bfloat16", "bfloat16", "float16"]
    assert stored_dtype("org/not-cached") is None and stored_dtype(str(tmp_path / "gone")) is None

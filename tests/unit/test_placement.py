"""Where a sweep's runs train at once: the GPUs counted without torch, one each, and what cannot be placed
refused in one line before anything starts."""

import pytest

from core.errors import TunelabError
from core.training.placement import Slot, slots, visible_gpus


@pytest.mark.parametrize(
    ("listed", "gpus"),
    [
        ("0,1", ["0", "1"]),
        (" 2, 5 ", ["2", "5"]),
        ("", []),
        ("0,-1,2", ["0"]),  # CUDA stops at the first invalid entry
        ("GPU-8a1f,GPU-77b2", ["GPU-8a1f", "GPU-77b2"]),
        ("1,1,0", ["1", "0"]),  # one GPU named twice is one GPU
    ],
)
def test_the_parents_cuda_visible_devices_lists_the_gpus(tmp_path, listed, gpus):
    (tmp_path / "0000:01:00.0").mkdir()  # the driver would say one: the variable rules
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": listed}, tmp_path) == gpus


def test_without_the_variable_the_drivers_entries_are_counted_else_its_device_nodes(tmp_path):
    driver, dev = tmp_path / "gpus", tmp_path / "dev"
    for bus in ("0000:01:00.0", "0000:41:00.0", "0000:81:00.0"):
        (driver / bus).mkdir(parents=True)
    dev.mkdir()
    for node in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset"):
        (dev / node).touch()
    assert visible_gpus({}, driver, dev) == ["0", "1", "2"]
    assert visible_gpus({}, tmp_path / "absent", dev) == ["0", "1"]  # a container with the nodes alone
    assert visible_gpus({}, tmp_path / "absent", tmp_path / "absent") == []


def test_runs_at_once_get_a_gpu_each_and_a_share_of_the_cores():
    assert slots("auto", 1, gpus=["0", "1"], cores=16) == [Slot(None, 16)]  # one after another: as a plain run
    assert slots("auto", 2, gpus=["3", "5", "6"], cores=16) == [Slot("3", 8), Slot("5", 8)]
    assert slots("cuda", 3, gpus=["0", "1", "2"], cores=2) == [Slot("0", 1), Slot("1", 1), Slot("2", 1)]
    assert [str(s) for s in slots("auto", 2, gpus=["3", "5"], cores=4)] == ["GPU 3", "GPU 5"]


def test_without_gpus_or_on_the_cpu_the_runs_share_the_cores():
    assert slots("auto", 2, gpus=[], cores=8) == [Slot("", 4), Slot("", 4)]  # none found: none given, the CPU
    assert slots("cpu", 3, gpus=["0", "1", "2"], cores=6) == [Slot(None, 2)] * 3  # the GPUs are not asked for
    assert slots("auto", 4, gpus=[], cores=2) == [Slot("", 1)] * 4
    assert str(Slot("", 1)) == str(Slot(None, 1)) == "CPU"


@pytest.mark.parametrize(
    ("device", "count", "gpus", "why"),
    [
        ("auto", 3, ["0", "1"], "nproc 3 with sweep trains 3 runs at once, one GPU each: 2 GPUs are visible (0,1)"),
        ("cuda", 2, ["7"], "1 GPU is visible (7)"),
        ("cuda:1", 2, ["0", "1"], "device cuda:1 pins every run to one GPU (give device cuda or auto)"),
        ("cuda", 2, [], "no GPU was found to spread them over (list them in CUDA_VISIBLE_DEVICES)"),
    ],
)
def test_what_cannot_be_placed_is_one_line_naming_the_fields(device, count, gpus, why):
    with pytest.raises(TunelabError, match=why.replace("(", r"\(").replace(")", r"\)")) as raised:
        slots(device, count, gpus=gpus, cores=8)
    assert raised.value.fields[:2] == ("nproc", "sweep")

"""The sweep's SLURM request is checked against the partition (sinfo) before anything is submitted."""

import logging
import math

import pytest

from egg_cli.errors import EggError
from egg_cli.sweeps.partition import NodeShape, check_request, gres_gpus, parse_sinfo, slurm_minutes

# two partitions: cpu (default) with two node shapes, gpu with four A100s per node and a 2-day limit
SINFO = "cpu*|16|64000|(null)|1-00:00:00\ncpu*|64|256000|(null)|1-00:00:00\ngpu|32|512000|gpu:a100:4(S:0-1)|2-00:00:00\n"


def fake_sinfo(tmp_path, monkeypatch, output: str = SINFO, status: int = 0) -> None:
    """Put a `sinfo` on PATH that prints ``output`` (or fails with ``status``)."""
    (tmp_path / "sinfo.out").write_text(output)
    script = tmp_path / "sinfo"
    script.write_text(
        f"#!/bin/sh\nexec /bin/cat {tmp_path / 'sinfo.out'}\n"
        if status == 0
        else f"#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller' >&2\nexit {status}\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


def request(**params):
    return {"partition": None, "cpus_per_task": 8, "mem_gb": 32, "gpus_per_node": None, "timeout_min": 240, **params}


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("infinite", math.inf), ("30", 30), ("4:00:00", 240), ("1-00:00:00", 1440), ("2-06", 3240), ("45:30", 45.5)],
)
def test_slurm_time_limits_convert_to_minutes(text, minutes):
    assert slurm_minutes(text) == minutes


@pytest.mark.parametrize(("gres", "gpus"), [("(null)", 0), ("gpu:2", 2), ("gpu:a100:4(S:0-1)", 4), ("gpu:a100:4,gpu:v100:2", 6)])
def test_gpu_counts_come_from_the_gres_string(gres, gpus):
    assert gres_gpus(gres) == gpus


def test_sinfo_lines_become_node_shapes():
    nodes = parse_sinfo(SINFO)
    assert nodes[2] == NodeShape("gpu", 32, 512000, 4, 2880)
    assert [n.partition for n in nodes] == ["cpu*", "cpu*", "gpu"]


def test_a_request_that_fits_one_node_shape_of_the_default_partition_passes(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, monkeypatch)
    check_request(request(cpus_per_task=48, mem_gb=200))  # only the 64-core node holds it


def test_too_many_cpus_and_memory_name_the_keys_and_the_partition_limits(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, monkeypatch)
    with pytest.raises(EggError) as err:
        check_request(request(cpus_per_task=128, mem_gb=300))
    message = str(err.value)
    assert "partition cpu:" in message and "\n" not in message
    assert "hydra.launcher.cpus_per_task=128 > 64 CPUs" in message
    assert "hydra.launcher.mem_gb=300 > 250.0 GB" in message


def test_a_gpu_request_on_a_cpu_partition_is_refused_before_sbatch(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, monkeypatch)
    with pytest.raises(EggError, match=r"hydra.launcher.gpus_per_node=1 > 0 GPUs"):
        check_request(request(gpus_per_node=1))
    check_request(request(partition="gpu", gpus_per_node=4))
    with pytest.raises(EggError, match=r"gpus_per_node=2 > 0 GPUs"):
        check_request(request(gres="gpu:a100:2"))  # GPUs asked through --gres count too


def test_a_time_limit_beyond_the_partition_is_refused(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, monkeypatch)
    with pytest.raises(EggError, match=r"timeout_min=2000 > 1440 min"):
        check_request(request(timeout_min=2000))


def test_an_unknown_partition_lists_the_cluster_partitions(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, monkeypatch)
    with pytest.raises(
        EggError, match=r"hydra.launcher.partition=big is not a partition of this cluster; expected one of: cpu, gpu"
    ):
        check_request(request(partition="big"))


def test_an_unreachable_controller_is_one_error_line(tmp_path, monkeypatch):
    fake_sinfo(tmp_path, monkeypatch, status=1)
    with pytest.raises(EggError, match=r"sinfo failed \(slurm_load_partitions: Unable to contact slurm controller\)"):
        check_request(request())


def test_without_sinfo_the_check_is_skipped_with_a_log_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="egg.sweep"):
        check_request(request(cpus_per_task=10_000))
    assert "sinfo not found" in caplog.text

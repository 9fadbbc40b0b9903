"""The launcher presets compose on top of hydra-submitit-launcher's configs and reach sbatch."""

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from egg_cli.configs import CONFIG_DIR

# the presets are meant to be validated against the plugin's schema of the same name (egg's CLI hides this notice)
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore schema")


def launcher_config(*overrides: str, sweep_dir: str = "/sweeps/s1"):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("simulate", overrides=[*overrides, f"hydra.sweep.dir={sweep_dir}"], return_hydra_config=True)


def test_slurm_preset_requests_no_gpu_and_exposes_partition_cpus_memory_time_over_the_plugin_schema():
    launcher = launcher_config("hydra/launcher=submitit_slurm").hydra.launcher
    assert launcher._target_ == "hydra_plugins.egg_launcher.EggSlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb, launcher.timeout_min) == (
        None,
        None,
        8,
        32,
        240,
    )
    assert launcher.signal_delay_s == 30 and launcher.max_num_timeout == 3  # the plugin's are 120 and 0: no requeue
    with pytest.raises(ConfigCompositionException):  # typed by the plugin's schema
        launcher_config("hydra/launcher=submitit_slurm", "hydra.launcher.mem_gb=lots")


def test_slurm_gpu_preset_adds_one_gpu_per_job_to_the_slurm_preset():
    launcher = launcher_config("hydra/launcher=submitit_slurm_gpu").hydra.launcher
    assert launcher._target_ == "hydra_plugins.egg_launcher.EggSlurmLauncher"
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb) == (1, 8, 32)


def test_cpu_slurm_sweep_script_has_no_gpu_request(tmp_path, monkeypatch):
    ((script, _),) = submitted_scripts(tmp_path, monkeypatch, "hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=2")
    assert "gpu" not in script.lower()
    assert "#SBATCH --cpus-per-task=2\n" in script


def test_local_preset_hides_gpus_and_gives_each_job_one_core_by_default():
    launcher = launcher_config("hydra/launcher=submitit_local").hydra.launcher
    assert launcher._target_.endswith("LocalLauncher")
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.timeout_min) == (0, 1, 60)
    assert launcher.submitit_folder == "/sweeps/s1/.submitit/%j"


def submitted_scripts(tmp_path, monkeypatch, *overrides):
    """The sbatch scripts a sweep of three jobs would submit (sbatch itself is intercepted), with job counts."""
    # submitit's SLURM executor only needs `srun` to exist; no `sinfo` on PATH: the partition check is skipped
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "srun").chmod(0o755)
    scripts = []

    def map_array(self, fn, *args):
        scripts.append((self._executor._make_submission_file_text("python -m job", "uid"), len(args[0])))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    cfg = launcher_config(*overrides, sweep_dir=str(tmp_path / "sweep"))
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    assert launcher.launch([["seed=0"], ["seed=1"], ["seed=2"]], initial_job_idx=0) == []
    return scripts


def test_slurm_preset_values_arrive_in_the_sbatch_script(tmp_path, monkeypatch):
    ((script, n_jobs),) = submitted_scripts(
        tmp_path,
        monkeypatch,
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=2",
        "hydra.launcher.cpus_per_task=12",
        "hydra.launcher.mem_gb=64",
        "hydra.launcher.timeout_min=90",
    )
    assert n_jobs == 3
    for line in ("--partition=gpu", "--gpus-per-node=2", "--cpus-per-task=12", "--mem=64GB", "--time=90", "--signal=USR2@30"):
        assert f"#SBATCH {line}\n" in script


def test_a_one_minute_job_gets_the_pre_timeout_signal_15_s_before_its_limit(tmp_path, monkeypatch):
    ((script, _),) = submitted_scripts(tmp_path, monkeypatch, "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=1")
    assert "#SBATCH --time=1\n" in script and "#SBATCH --signal=USR2@15\n" in script

"""egg's sweep launchers, here because Hydra instantiates launchers only from ``hydra_plugins``.

The behaviour lives in :mod:`egg_cli.sweeps.launcher`; these classes only attach it to
hydra-submitit-launcher's local and SLURM launchers (``hydra/launcher=submitit_local|submitit_slurm``).
"""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from egg_cli.sweeps.launcher import OutcomeLauncher, SlurmOutcomeLauncher


class EggLocalLauncher(OutcomeLauncher, LocalLauncher):
    """Sweep jobs as local subprocesses; waits for all of them and reports failures in one line."""


class EggSlurmLauncher(SlurmOutcomeLauncher, SlurmLauncher):
    """Sweep jobs as one SLURM array, checked against the partition (sinfo) before sbatch."""

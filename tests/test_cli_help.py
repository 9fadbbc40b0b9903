"""The dispatcher's help: `egg rsm` lists its subcommands; a reader that leaves early is not an error."""

import subprocess
import sys

EGG = [sys.executable, "-c", "import sys; from egg_cli.cli import main; main(sys.argv[1:])"]


def test_egg_rsm_and_egg_rsm_help_list_the_four_subcommands():
    for args in (["rsm"], ["rsm", "--help"]):
        proc = subprocess.run([*EGG, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == ""
        listed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("  rsm ")]
        assert listed == ["synth", "simulate", "map", "residual"]


def test_help_into_a_pipe_closed_early_exits_0_without_a_traceback():
    for args in (["--help"], ["demo", "--help"]):  # the dispatcher's help and a command's Hydra help
        proc = subprocess.Popen([*EGG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        proc.stdout.close()  # the reader leaves before egg writes
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and err == b"", (args, err.decode())

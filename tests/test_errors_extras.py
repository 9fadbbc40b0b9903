"""Optional dependency groups: a missing extra is one line that names what to install."""

import sys

import numpy as np
import pytest

from egg_cli.errors import EggError
from egg_cli.rsm.volume import load_mask
from egg_cli.runtime import optional_import
from egg_cli.synthesis.blackbox.cma_optimizers import CMAOptimizer


def test_optional_import_returns_the_module_or_names_the_extra():
    assert optional_import("numpy", "all", "anything") is np
    with pytest.raises(EggError, match=r"^method=cmaes needs the egg_no_such_module package: pip install 'egg-cli\[cmaes\]'"):
        optional_import("egg_no_such_module", "cmaes", "method=cmaes")


def test_cmaes_without_cma_names_the_cmaes_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cma", None)  # import cma now raises ImportError
    with pytest.raises(EggError, match=r"method=cmaes needs the cma package: pip install 'egg-cli\[cmaes\]'"):
        CMAOptimizer(8, np.random.default_rng(0))


def test_nifti_input_without_nibabel_names_the_fmri_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(
        EggError, match=r"reading and writing NIfTI images needs the nibabel package: pip install 'egg-cli\[fmri\]'"
    ):
        load_mask(tmp_path / "mask.nii.gz")

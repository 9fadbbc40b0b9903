"""scripts/link_torch.py: the wheel smoke test's shared torch, linked with everything it requires."""

import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "link_torch.py"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def linked_distributions(folder: Path) -> set[str]:
    return {normalized(p.name.split("-", 1)[0]) for p in folder.glob("*.dist-info")}


def test_link_torch_links_torch_and_the_distributions_it_requires_with_their_extras(tmp_path):
    out = tmp_path / "torch_links"
    done = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "torch").resolve() == Path(torch.__file__).parent.resolve()
    linked = linked_distributions(out)
    assert {"torch", "torchvision", "numpy", "pillow"} <= linked
    installed = {normalized(d.metadata["Name"]) for d in metadata.distributions()}
    for requirement in metadata.distribution("torch").requires:
        name = normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))
        if "extra ==" not in requirement and name in installed:
            assert name in linked, name
    if "cuda-toolkit" in linked:  # torch's CUDA build asks for cuda-toolkit[cublas,...]: the extras' wheels come too
        assert "nvidia-cublas" in linked
    # a fresh interpreter that sees only the links imports the same torch build
    probe = f"import sys; sys.path.insert(0, {str(out)!r}); import torch; print(torch.__version__, torch.__file__)"
    seen = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert seen[0] == torch.__version__ and seen[1].startswith(str(out))


def test_link_torch_refuses_an_existing_folder_and_a_missing_argument(tmp_path):
    assert subprocess.run([sys.executable, str(SCRIPT)], capture_output=True).returncode == 2
    (tmp_path / "there").mkdir()
    assert subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "there")], capture_output=True).returncode != 0

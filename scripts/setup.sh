#!/usr/bin/env bash
# Create the project-local virtual environment .venv and install egg with all its extras and the test tools.
# Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.egg-setup-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -e "$stamp" ]; then
    # torch and torchvision are pinned as a pair here (a mismatched pair fails to import);
    # pyproject.toml keeps ranges so cluster users can bring their own build.
    .venv/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
    # compat mode puts the checkout on sys.path, so Hydra's plugin scan finds hydra_plugins/egg_launcher
    # (the default editable finder hides it from pkgutil)
    .venv/bin/python -m pip install --quiet -e ".[test,all]" --config-settings editable_mode=compat
    rm -f .venv/.egg-setup-*
    touch "$stamp"
fi
echo "egg is installed in $(pwd)/.venv (activate with: source .venv/bin/activate)"

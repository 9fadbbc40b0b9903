#!/usr/bin/env bash
# Build egg's wheel, install it (not editable) into a fresh virtual environment and run every
# command family once from a folder outside the repository, as a cluster user would.
#   scripts/wheel_smoke.sh [work folder]      (default: a new temporary folder, removed at the end)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
if [ $# -ge 1 ]; then work=$(mkdir -p "$1" && cd "$1" && pwd); keep=1; else work=$(mktemp -d); keep=0; fi
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
step() { printf '[wheel smoke] %s\n' "$*"; }

step "building the wheel"
"$PY" -m pip wheel --quiet --no-deps -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/egg_cli-*.whl)
for member in egg_cli/configs/synth.yaml egg_cli/configs/train_groups/model/core/stacked.yaml \
              egg_cli/configs/hydra/launcher/submitit_slurm.yaml egg_cli/diffusion/weights/default.pt \
              egg_cli/models/weights/resnet18_rotation.pt; do
    "$PY" -c "import sys, zipfile; sys.exit(0 if sys.argv[2] in zipfile.ZipFile(sys.argv[1]).namelist() else 1)" "$wheel" "$member" \
        || { echo "wheel smoke: $member is missing from $wheel" >&2; exit 1; }
done

step "installing $(basename "$wheel") into a fresh virtual environment"
"$PY" -m venv "$work/venv"
# torch and torchvision (with their CUDA libraries about 5.5 GB) are shared with the building
# environment through symlinks rather than installed a second time, which a small disk cannot hold;
# every other dependency is resolved and installed from the wheel's own metadata. Where the building
# environment has no torch, the pinned pair is installed into the fresh one.
site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if "$PY" "$repo/scripts/link_torch.py" "$work/torch"; then
    echo "$work/torch" > "$site/egg_smoke_torch.pth"
else
    "$work/venv/bin/python" -m pip install --quiet --no-cache-dir torch==2.14.1 torchvision==0.29.1
fi
"$work/venv/bin/python" -m pip install --quiet --no-cache-dir "$wheel[all]"   # fmri (egg rsm) and cmaes extras
egg=$work/venv/bin/egg
mkdir -p "$work/run" && cd "$work/run"   # nothing of the repository is reachable from here
"$work/venv/bin/python" -c "import egg_cli, sys; sys.exit(egg_cli.__file__.startswith('$repo/'))" \
    || { echo "wheel smoke: egg_cli is imported from the checkout $repo, not from the installed wheel" >&2; exit 1; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

step "egg --version / --help"
"$egg" --version
"$egg" rsm --help > rsm_help.txt && grep -q "rsm map" rsm_help.txt
step "egg simulate"
"$egg" simulate simulation=v4_sim_tiny progress=false hydra.run.dir=sim
"$egg" info sim/dataset.h5 > /dev/null
step "egg train"
"$egg" train dataset_path=sim/dataset.h5 trainer.max_epochs=1 hydra.run.dir=train
step "egg train model/core=task_driven (the shipped backbone)"
"$egg" train dataset_path=sim/dataset.h5 model/core=task_driven model/readout=gaussian trainer.max_epochs=1 hydra.run.dir=train_task
for method in ga egg xdream cmaes; do
    step "egg synth method=$method"
    case $method in
        ga) extra=(method.steps=5) ;;
        egg) extra=(method.steps=5) ;;
        *) extra=(method.budget=40 method.population_size=20) ;;
    esac
    "$egg" synth model=train/model.pt method=$method "${extra[@]}" neurons=[0] seeds=[0] progress=false \
        hydra.run.dir=synth_$method
    test -f synth_$method/summary.json
done
step "egg rsm simulate + map"
layers="[inception3a,inception4c]"
"$egg" rsm simulate n_images=8 image_size=32 "model.layers=$layers" "volume.shape=[16,18,16]" \
    volume.region_radius_mm=9 volume.n_runs=2 bold.n_subjects=2 bold.repeats=1 progress=false hydra.run.dir=rsm_sim
"$egg" rsm map bids.root=rsm_sim/bids rdms=rsm_sim/layer_rdms.h5 truth=rsm_sim/truth \
    n_permutations=20 group.n_permutations=4 radius=7 hydra.run.dir=rsm_map
test -f rsm_map/summary.json && test -f rsm_map/group/summary.json
step "passed: the installed wheel runs simulate, info, train (stacked and the shipped task-driven core), synth (ga, egg, xdream, cmaes), rsm simulate + map"

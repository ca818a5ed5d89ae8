#!/usr/bin/env bash
# lomar_transfer in a project of your own, step by step: what README "Using the package in your
# own mmdet / mmseg / mmpretrain project" shows; tests/test_packaging.py runs this file as it is.
#   bash docs/use_in_your_project.sh [PROJECT_DIR]   # in the clone, after tools/install.sh
set -euo pipefail
REPO=$(pwd)
PROJECT=$(realpath -m "${1:-../my_project}")
mkdir -p "$PROJECT" && cd "$PROJECT"

# 1. your project's environment, seeing the pinned stack that tools/install.sh put in the clone's
#    .venv (torch, mmcv with its compiled ops, mmdet, mmseg, mmpretrain) as a path entry
"$REPO/.venv/bin/python" -m venv env
"$REPO/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    >"$(env/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/stack.pth"

# 2. the package as a wheel, installed without dependencies: the stack is there already, and pip
#    would otherwise re-resolve torch's own requirements and fail (ResolutionImpossible)
env/bin/python -m pip wheel --no-deps --no-build-isolation -q "$REPO" -w dist
env/bin/python -m pip install --no-deps -q dist/lomar_transfer-*.whl

# 3. data: the embedded stand-in here (real data: point data_root at it)
env/bin/lomar-make-data --out data/synthetic --coco 2 1 --ade 2 2 --imagenet 1 1

# 4. a config of yours: one line starts from any config of ours; your checkpoint or none
cat >my_config.py <<'EOF'
_base_ = ['lomar_transfer::mae/upernet_vit-tiny-p8_synthetic-ade20k.py']  # any file of configs/
model = dict(backbone=dict(init_cfg=None))  # or init_cfg=dict(type='Pretrained', checkpoint=...)
train_cfg = dict(max_iters=2)
EOF

# 5. train and test with our commands, or with the project's own tool (the same safety features;
#    each run in its own work dir: a finished run there is not trained again)
env/bin/lomar-train my_config.py --work-dir work_dirs/mine
env/bin/lomar-test my_config.py work_dirs/mine/iter_2.pth --show-dir pictures
MMSEG=$(env/bin/python -c 'import mmseg, os; print(os.path.dirname(mmseg.__file__))')
env/bin/python "$MMSEG/.mim/tools/train.py" my_config.py --work-dir work_dirs/stock

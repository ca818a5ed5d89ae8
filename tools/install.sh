#!/usr/bin/env bash
# Creates/updates the project environment in .venv/ (idempotent).
#
#   bash tools/install.sh            # install what is missing; a no-op when up to date
#
# Environment variables:
#   PYTHON                  interpreter for the venv (default: python3.11, else python3)
#   LOMAR_WHEEL_CACHE       where built mmcv wheels are kept and reused
#                           (default: ${XDG_CACHE_HOME:-~/.cache}/lomar_transfer/wheels)
#   LOMAR_PREBUILT_WHEELS   optional directory of prebuilt CPU mmcv wheels (with SHA256SUMS), used
#                           before building (CI points it at ../shared/wheels)
#   MAX_JOBS                compile jobs for the mmcv build (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.lomar_transfer_installed"

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- fast path
# Everything that decides the environment's content goes into the key: a second run with the
# same key (and a working import) changes nothing and takes a couple of seconds.
stamp_key() {
  cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/tools/install.sh" | sha256sum | cut -c1-16
}
env_works() {
  # from outside the repository: there `import lomar_transfer` would find the source folder even
  # with the package uninstalled (and _lomar_transfer_scope, which it installs, missing)
  (cd "${TMPDIR:-/tmp}" && "$PY" - <<'EOF' >/dev/null 2>&1
import mmcv, mmdet, mmseg, mmpretrain, lomar_transfer, _lomar_transfer_scope  # noqa: F401
from mmcv.ops import nms  # noqa: F401  (fails when mmcv was installed without compiled ops)
EOF
  )
}
if [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_key)" ]] && env_works; then
  log "environment in .venv is up to date (remove $STAMP to force a re-install)"
  exit 0
fi

start=$(date +%s)
# ---------------------------------------------------------------- venv
if [[ ! -x "$PY" ]]; then
  base_python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  [[ -n "$base_python" ]] || die "no python3 found; install Python 3.11 or set PYTHON=/path/to/python3.11"
  log "creating .venv with $base_python ($("$base_python" --version 2>&1))"
  "$base_python" -m venv "$VENV"
fi
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ "$pyver" == "3.11" ]] || log "WARNING: Python $pyver; the pinned stack was verified on 3.11"

# (the grep drops pip's notes about local index folders that lack a package: noise, not errors)
pip_install() {
  "$PY" -m pip install --disable-pip-version-check --progress-bar off -q "$@" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

log "1/5 PyTorch (requirements/torch.txt; ~2 min and ~5.5 GB the first time)"
pip_install -r "$ROOT/requirements/torch.txt"
log "2/5 build tools and runtime pins (requirements/build.txt, runtime.txt, tests.txt)"
pip_install -r "$ROOT/requirements/build.txt" -r "$ROOT/requirements/runtime.txt" \
  -r "$ROOT/requirements/tests.txt"

# ---------------------------------------------------------------- mmcv with compiled ops
MMCV_VERSION=$(sed -n 's/^mmcv==\([0-9.]*\).*/\1/p' "$ROOT/requirements/mminstall.txt")
[[ -n "$MMCV_VERSION" ]] || die "requirements/mminstall.txt has no 'mmcv==X' pin"

mmcv_ok() {  # installed mmcv has the pinned version and working compiled ops for this torch
  "$PY" - "$MMCV_VERSION" <<'EOF' >/dev/null 2>&1
import sys, torch, mmcv
from mmcv.ops import nms
assert mmcv.__version__ == sys.argv[1], mmcv.__version__
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
EOF
}

# Flavor: CUDA ops when torch sees a GPU and nvcc exists; CPU ops otherwise.
read -r TORCH_VERSION CUDA_TAG < <("$PY" -c '
import shutil, torch
cuda = torch.version.cuda if torch.cuda.is_available() and shutil.which("nvcc") else None
print(torch.__version__.split("+")[0], "cu" + cuda.replace(".", "") if cuda else "cpu")')
PYTAG="cp${pyver/./}"
KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${PYTAG}_${CUDA_TAG}_$(uname -m)"
CACHE_ROOT="${LOMAR_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomar_transfer/wheels}"
CACHE_DIR="$CACHE_ROOT/$KEY"
WHEEL_NAME="mmcv-${MMCV_VERSION}-${PYTAG}-${PYTAG}-linux_$(uname -m).whl"

install_wheel() {  # $1 = wheel; installs it and checks the ops, uninstalling again on failure
  pip_install --force-reinstall --no-deps "$1"
  if mmcv_ok; then return 0; fi
  log "  $1 does not work with this torch (ABI mismatch?); removing it"
  "$PY" -m pip uninstall -y -q mmcv >/dev/null 2>&1 || true
  return 1
}

# While the script writes into the cache (a build folder, a wheel being copied in), whatever ends it
# (an error, Ctrl-C, kill, a closed terminal) stops the build and removes what is half-made: the
# cache only ever holds complete wheels. The build runs in its own session, so that stopping it
# reaches the compilers too.
CLEANUP=() BUILD_PID=
cleanup() {
  if [[ -n "$BUILD_PID" ]]; then
    kill -TERM -- "-$BUILD_PID" 2>/dev/null || kill -TERM "$BUILD_PID" 2>/dev/null || true
    wait "$BUILD_PID" 2>/dev/null || true
  fi
  if (( ${#CLEANUP[@]} )); then rm -rf -- "${CLEANUP[@]}"; fi
}
guard() {  # $@ = what to remove if the script ends now
  CLEANUP=("$@")
  trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
}
unguard() { CLEANUP=(); BUILD_PID=; trap - EXIT INT TERM HUP; }

cache_wheel() {  # $1 = a complete wheel, copied ($2 = cp) or moved (mv) into the cache atomically
  mkdir -p "$CACHE_DIR"
  local partial="$CACHE_DIR/.$WHEEL_NAME.partial" before=("${CLEANUP[@]}")
  guard "${before[@]}" "$partial"
  "$2" "$1" "$partial"        # same filesystem: the final mv is atomic
  mv "$partial" "$CACHE_DIR/$WHEEL_NAME"
  if (( ${#before[@]} )); then CLEANUP=("${before[@]}"); else unguard; fi
}

build_mmcv() {  # builds into a temp dir inside the cache root, moves the wheel in atomically
  mkdir -p "$CACHE_ROOT"
  # build folders of runs killed outright (SIGKILL, power loss: no cleanup ran); a build takes
  # minutes, so a day-old one belongs to no running install
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -name '.build-*' -mmin +1440 \
    -exec rm -rf {} + 2>/dev/null || true
  local work; work=$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")
  # A half-built wheel never reaches the cache: everything lives in $work until cache_wheel.
  guard "$work"
  log "  downloading the mmcv $MMCV_VERSION sdist"
  "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    "mmcv==$MMCV_VERSION" -d "$work/src"
  tar xzf "$work/src/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
  local src="$work/mmcv-$MMCV_VERSION"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  local force_cuda=0; [[ "$CUDA_TAG" != cpu ]] && force_cuda=1
  # the sources mmcv's setup.py compiles: pytorch/*.cpp, pytorch/cpu/*.cpp (+ pytorch/cuda/*)
  local dirs=("$src/mmcv/ops/csrc/pytorch" "$src/mmcv/ops/csrc/pytorch/cpu")
  [[ $force_cuda == 1 ]] && dirs+=("$src/mmcv/ops/csrc/pytorch/cuda")
  local total; total=$(find "${dirs[@]}" -maxdepth 1 \( -name '*.cpp' -o -name '*.cu' \) | grep -c . || true)
  local jobs="${MAX_JOBS:-$(nproc)}"
  log "  compiling mmcv ops ($CUDA_TAG, $jobs jobs, $total sources; ~15 min on 2 cores)"
  log "  full log: $work/build.log"
  local session=; command -v setsid >/dev/null && session=setsid
  (cd "$src" && MAX_JOBS="$jobs" MMCV_WITH_OPS=1 FORCE_CUDA=$force_cuda \
     exec ${session:+"$session"} "$PY" -m pip wheel -v --disable-pip-version-check \
     --no-build-isolation --no-deps -w "$work/dist" . >"$work/build.log" 2>&1) &
  BUILD_PID=$!
  local t0; t0=$(date +%s)
  while kill -0 "$BUILD_PID" 2>/dev/null; do
    sleep 20 & wait $!  # (a signal interrupts `wait`, not a foreground sleep)
    local done_; done_=$(find "$src" -name '*.o' 2>/dev/null | grep -c . || true)
    log "  mmcv build: $done_/$total objects compiled, $(( $(date +%s) - t0 ))s elapsed"
  done
  local status=0; wait "$BUILD_PID" || status=$?
  BUILD_PID=
  if (( status )); then
    tail -n 40 "$work/build.log" >&2
    die "mmcv build failed (log above; a C++ compiler and the Python headers are required)"
  fi
  local built; built=$(ls "$work"/dist/mmcv-*.whl)
  cache_wheel "$built" mv
  rm -rf "$work"; unguard
  log "  cached $CACHE_DIR/$WHEEL_NAME ($(( $(date +%s) - t0 ))s)"
}

prebuilt_checksum_ok() {  # $1 = prebuilt dir: the wheel's SHA-256 is the one SHA256SUMS lists
  local want have
  want=$(awk -v f="$WHEEL_NAME" '$2 == f || $2 == "*" f { print tolower($1); exit }' \
    "$1/SHA256SUMS")
  have=$(sha256sum "$1/$WHEEL_NAME" | cut -d' ' -f1)
  [[ -n "$want" && "$have" == "$want" ]] && return 0
  if [[ -z "$want" ]]; then
    log "  $1/SHA256SUMS lists no $WHEEL_NAME: not using an unverified wheel; building instead"
  else
    log "  checksum mismatch for $1/$WHEEL_NAME: its sha256 is $have, SHA256SUMS says $want" \
        "(damaged or replaced file); dropping it, building instead"
  fi
  return 1
}

log "3/5 mmcv $MMCV_VERSION with compiled ops ($KEY)"
if mmcv_ok; then
  log "  already installed and working"
else
  done_mmcv=0
  if [[ -f "$CACHE_DIR/$WHEEL_NAME" ]]; then
    log "  using cached wheel $CACHE_DIR/$WHEEL_NAME"
    install_wheel "$CACHE_DIR/$WHEEL_NAME" && done_mmcv=1
  fi
  prebuilt="${LOMAR_PREBUILT_WHEELS:-}"
  if [[ $done_mmcv == 0 && -n "$prebuilt" && "$CUDA_TAG" == cpu && -f "$prebuilt/$WHEEL_NAME" ]]; then
    log "  trying prebuilt wheel $prebuilt/$WHEEL_NAME"
    if [[ -f "$prebuilt/SHA256SUMS" ]] && ! prebuilt_checksum_ok "$prebuilt"; then
      :  # dropped (prebuilt_checksum_ok says why)
    elif install_wheel "$prebuilt/$WHEEL_NAME"; then
      done_mmcv=1
      # keep it in our cache too, so later installs need no prebuilt dir
      cache_wheel "$prebuilt/$WHEEL_NAME" cp
    fi
  fi
  if [[ $done_mmcv == 0 ]]; then
    rm -f "$CACHE_DIR/$WHEEL_NAME"   # a cached wheel that failed the check is not reused
    build_mmcv
    install_wheel "$CACHE_DIR/$WHEEL_NAME" || die "freshly built mmcv fails its ops check"
  fi
fi

log "4/5 OpenMMLab projects (requirements/mminstall.txt)"
pip_install -r "$ROOT/requirements/mminstall.txt"
# mmpose only for tests/test_other_projects.py (our ViT in its ViTPose config); --no-deps because
# its chumpy dependency does not build (see requirements/tests.txt, which pins what it needs)
pip_install --no-deps mmpose==1.3.2
mmcv_ok || die "mmcv changed while installing the OpenMMLab projects"

log "5/5 lomar_transfer (editable)"
pip_install --no-deps --no-build-isolation -e "$ROOT"
# mmengine finds `lomar_transfer::` configs at <dist location>/lomar_transfer/.mim/configs
# (mmengine/utils/package_utils.py get_installed_path); an editable install has its dist-info in
# site-packages but no package folder there, so give it one: a link to the clone's package.
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$ROOT/lomar_transfer" "$SITE/lomar_transfer"
# and the start-up hook a wheel install puts there (lets mmengine accept lomar_transfer::)
cp "$ROOT/lomar_transfer.pth" "$SITE/lomar_transfer.pth"
env_works || die "the environment does not import (run: $PY -c 'import lomar_transfer')"
stamp_key >"$STAMP"
log "done in $(( $(date +%s) - start ))s"

#!/bin/bash
# Reproduces this folder: the converged Fashion-MNIST ResNet8 zoo, the claims sweep and the report.
# Run from the repository root after `cargo build --release`; needs Debian's dataset-fashion-mnist.
# Every step resumes: re-run the script after an interruption. Training is bitwise deterministic
# for a fixed thread count (these results: 2 rayon threads); the sweep does not depend on threads.
#
#   bash results/fashion-mnist-resnet8/reproduce.sh [WORK_DIR]   (default: fm-work, relative to
#   the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
# Training results are bitwise reproducible for a fixed thread count; these used 2.
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
B=${BBED:-target/release/bbed}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
W=${1:-fm-work}
HERE=results/fashion-mnist-resnet8
mkdir -p "$W"

# 1. The zoo (weights stay in $W/zoo; only the manifest is committed).
Z=(--model resnet8 --input 1,28,28 --data "$DATA" --out "$W/zoo" --seed 0)
$B zoo "${Z[@]}" --only vanilla --epochs 20
$B zoo "${Z[@]}" --only kd --epochs 15
$B zoo "${Z[@]}" --only filter,channel,kernel,weight --epochs 5 --rate 0.5
$B zoo "${Z[@]}" --only xnor,abc1x1,abc3x3,abc5x5 --epochs 8

# 2. The sweep: configs/fashion_claims.toml on 500 test images, 5 PGD reruns, seed 0. One sweep
#    folder per zoo entry (cell seeds hash the entry name, so this equals one joint sweep and
#    lets each entry be attacked as soon as it is trained).
for kind in vanilla kd filter channel kernel weight xnor abc1x1 abc3x3 abc5x5; do
  name=resnet8-$kind
  z="$W/sweep-zoo/$kind"; mkdir -p "$z"
  python3 - "$W/zoo" "$name" "$z" <<'PY'
import json, os, sys
zoo, name, z = sys.argv[1:]
m = json.load(open(os.path.join(zoo, "manifest.json")))
e = next(e for e in m["entries"] if e["name"] == name)
dst = os.path.join(z, e["weights"])
if not os.path.exists(dst):
    os.symlink(os.path.abspath(os.path.join(zoo, e["weights"])), dst)
json.dump({"dataset": m["dataset"], "entries": [e]}, open(os.path.join(z, "manifest.json"), "w"), indent=2)
PY
  out="$W/sweep/$kind"; resume=(); [ -f "$out/sweep.json" ] && resume=(--resume)
  $B sweep --zoo "$z" --config configs/fashion_claims.toml --data "$DATA" --out "$out" \
    --images 500 --reruns 5 --seed 0 "${resume[@]}"
done

# 3. The report (figures, tables, paper claims with bootstrap CIs), then the packed records
#    (every record; PGD records without their per-step trace, see pack_records.py).
$B report "$W"/sweep/* --zoo "$W/zoo" --data "$DATA" --out "$HERE/report" --force
python3 "$HERE/pack_records.py" pack "$W"/sweep/*

#!/usr/bin/env bash
# Regenerate the training data and the shipped evaluation-world models from scratch:
#   stage 1: ovtools/encoders/checkpoints/ovtools-shapes.safetensors    (CLIPEncoder("ovtools-shapes", "shapes"))
#   stage 2: ovtools/encoders/checkpoints/ovtools-shapes3d.safetensors  (CLIPEncoder("ovtools-shapes", "shapes3d")),
#            stage 1 fine-tuned on rendered 3D views by scripts/finetune_shapes3d.sh (STEPS3D, SCENES3D, ROWS2D).
# Deterministic (fixed seeds, 2 torch threads: two full runs gave bit-identical weights). Stage 1 measured 22 min
# (1337 s: data 2 min, 1500 steps 20 min) on 2 CPU cores shared with other jobs; about 15 min when idle.
# Check quality afterwards: python scripts/eval_shapes_model.py
# Usage: scripts/train_shapes_model.sh [DATA_DIR] [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/shapes-train}
RUN=${2:-runs/ovtools-shapes}
STEPS=${STEPS:-1500}
# Waiting OpenMP threads sleep instead of spinning: on a machine shared with other jobs, spinning
# makes a 2-thread step up to 10x slower (measured 0.9 s vs 6 s per step next to one busy process).
export OMP_WAIT_POLICY=PASSIVE

rm -rf "$DATA" "$RUN"
start=$(date +%s)
ovtools datagen "$DATA" --kind captions --n 48000 --seed 0 --workers 2
ovtools train "$DATA/captions.csv" --model ovtools-shapes --out "$RUN" --steps "$STEPS" --batch-size 256 \
    --lr 1e-3 --seed 0 --loss supcon-clip --secondary-weight 0.05 --save-every 250 --save-dtype fp16 --threads 2
mkdir -p ovtools/encoders/checkpoints
install -m 0644 "$RUN/model.safetensors" ovtools/encoders/checkpoints/ovtools-shapes.safetensors
echo "stage 1 done in $(( $(date +%s) - start )) s: ovtools/encoders/checkpoints/ovtools-shapes.safetensors"
# Stage 2: rendered 3D views, from the model just trained (data next to DATA, run next to RUN).
PRETRAINED="$RUN/model.safetensors" scripts/finetune_shapes3d.sh "$(dirname "$DATA")" "${RUN}3d"

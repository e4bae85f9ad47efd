#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Trains the bundled model and the projection-sharing variants with kvstudio-cli train (see
# docs/bundled-model.md). Every run checkpoints every 5 minutes into $work and resumes from there
# when started again, so the script can be stopped and re-run at any time.
#
#   tools/train_bundled_models.sh default            # the 256-token QKV model (assets/models/variants/default-256)
#   tools/train_bundled_models.sh default1024        # the 1,024-token default model (assets/models/default)
#   tools/train_bundled_models.sh variants           # the variants at the default model's budget
#   tools/train_bundled_models.sh variant NAME       # one of them (qkv gqa2 gqa3 mqa k_eq_v
#                                                    #  q_eq_k q_eq_k_eq_v k_eq_v_gqa2 thin_keys
#                                                    #  thin_keys_control)
#   tools/train_bundled_models.sh baselines          # n-gram and bzip2 figures
#
# Environment: KVS_BUILD_DIR (default build-train), DEFAULT_STEPS, VARIANT_STEPS, VARIANT_LAYERS,
# VARIANT_WIDTH, VARIANT_HEADS, VARIANT_FFN, VARIANT_LR, OMP_NUM_THREADS. GQA-g has g KV heads
# (ALGORITHMS.md: GQA-4 = 16 -> 4 KV heads).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KVS_BUILD_DIR:-$here/build-train}
cli=$build/app/kvstudio-cli
work=$build/train
mkdir -p "$work"
[ -x "$cli" ] || { echo "build kvstudio-cli first: cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVS_NATIVE=ON && ninja -C $build kvstudio-cli" >&2; exit 2; }

default_steps=${DEFAULT_STEPS:-2500}
# The variants share the default model's size and budget (6 layers, width 192, 6 heads, SwiGLU
# 512, 2500 steps of 16 x 256, lr 1e-3, warmup 200, seed 1): the QKV variant *is* the default
# model, so `variant qkv` copies its results instead of training it twice.
variant_steps=${VARIANT_STEPS:-$default_steps}
variant_layers=${VARIANT_LAYERS:-6}
variant_width=${VARIANT_WIDTH:-192}
variant_heads=${VARIANT_HEADS:-6}
variant_ffn=${VARIANT_FFN:-512}
variant_lr=${VARIANT_LR:-1e-3}

# train NAME OUT STEPS [extra options...]: resumes from $work/NAME.ckpt when it exists.
train() {
  local name=$1 out=$2 steps=$3
  shift 3
  local ckpt=$work/$name.ckpt
  if [ -f "$work/$name.json" ] && [ -z "${FORCE:-}" ]; then
    echo "== $name: done ($work/$name.json; FORCE=1 trains again)"
    return
  fi
  local args=(train --steps "$steps" --checkpoint "$ckpt" --checkpoint-minutes 5 --out "$out"
              --json-out "$work/$name.json")
  if [ -f "$ckpt" ]; then
    args+=(--resume "$ckpt")
  else
    args+=("$@")
  fi
  echo "== $name: $cli ${args[*]}"
  "$cli" "${args[@]}" 2>&1 | tee -a "$work/$name.log"
}

variant() {
  local name=$1 common=(--layers "$variant_layers" --width "$variant_width" --heads "$variant_heads"
                        --ffn "$variant_ffn" --lr "$variant_lr" --warmup 200 --eval-every 500)
  local out=$work/variants/$name
  case "$name" in
    qkv)
      if [ -z "${VARIANT_STEPS:-}${VARIANT_LAYERS:-}${VARIANT_WIDTH:-}${VARIANT_HEADS:-}${VARIANT_FFN:-}${VARIANT_LR:-}" ]; then
        [ -f "$work/default.json" ] || { echo "train the default model first: $0 default" >&2; exit 2; }
        echo "== variant-qkv: the default model (same recipe); copying $work/default.json"
        cp "$work/default.json" "$work/variant-qkv.json"
      else
        train "variant-$name" "$out" "$variant_steps" "${common[@]}"
      fi
      ;;
    gqa2)         train "variant-$name" "$out" "$variant_steps" "${common[@]}" --kv-heads 2 ;;
    gqa3)         train "variant-$name" "$out" "$variant_steps" "${common[@]}" --kv-heads 3 ;;
    mqa)          train "variant-$name" "$out" "$variant_steps" "${common[@]}" --kv-heads 1 ;;
    k_eq_v)       train "variant-$name" "$out" "$variant_steps" "${common[@]}" --sharing k_eq_v ;;
    q_eq_k)       train "variant-$name" "$out" "$variant_steps" "${common[@]}" --sharing q_eq_k ;;
    q_eq_k_eq_v)  train "variant-$name" "$out" "$variant_steps" "${common[@]}" --sharing q_eq_k_eq_v ;;
    k_eq_v_gqa2)  train "variant-$name" "$out" "$variant_steps" "${common[@]}" --sharing k_eq_v --kv-heads 2 ;;
    thin_keys)
      # The short QK fine-tune of Thin Keys: the 256-token QKV model's (variants/default-256) query and key
      # projections trained for 800 steps (3.3M characters, a third of the default's budget)
      # with every KV head's key projection held at rank d/4 = 8; everything else frozen.
      train "variant-$name" "$out" "${THIN_KEYS_STEPS:-800}" --init "$here/assets/models/variants/default-256" \
        --train-only wq,wk --key-rank 8 --lr 5e-4 --warmup 50 --weight-decay 0 --eval-every 100
      ;;
    thin_keys_control)
      # The same fine-tune at full rank: what 800 more steps on W_Q, W_K give without thin keys
      # (not shipped; its JSON is the control row of the results table).
      train "variant-$name" "$out" "${THIN_KEYS_STEPS:-800}" --init "$here/assets/models/variants/default-256" \
        --train-only wq,wk --lr 5e-4 --warmup 50 --weight-decay 0 --eval-every 100
      ;;
    *) echo "unknown variant $name" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  default)
    # The recipe of the shipped model: 6 layers, width 192, 6 heads, context 256, RoPE, RMSNorm,
    # SwiGLU 512, tied, AdamW lr 1e-3 with warmup and cosine decay, batch 16 x 256.
    train default "$work/default" "$default_steps" --warmup 200 --eval-every 250
    ;;
  default1024)
    # The 1,024-token default (issue #14): the same recipe and character budget as the
    # 256-token model — 2,500 steps of 10,240 characters (4 x 1,024 instead of 16 x 256), AdamW
    # lr 1e-3, warmup 200, cosine to 10%, seed 1 — with whole books held out (--split books) so
    # that validation and the studio's prompts are text the model never saw.
    train default1024 "$work/default1024" "$default_steps" --context 1024 --batch 4 --split books \
      --warmup 200 --eval-every 250
    ;;
  variants)
    for v in ${VARIANTS:-qkv k_eq_v mqa q_eq_k q_eq_k_eq_v gqa2 gqa3 k_eq_v_gqa2}; do variant "$v"; done
    ;;
  variant)
    variant "${2:?variant name}"
    ;;
  baselines)
    "$cli" train --baselines --json-out "$work/baselines.json"
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac

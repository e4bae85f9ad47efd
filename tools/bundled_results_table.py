#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints the projection-sharing results table of docs/bundled-model.md from the train_results
JSON files that `kvstudio-cli train --json-out` writes (tools/train_bundled_models.sh puts them in
<build>/train/variant-NAME.json; the QKV row is the 256-token QKV model, default.json, shipped as
assets/models/variants/default-256 since the 1,024-token default model replaced it).

    tools/bundled_results_table.py [build-train/train]
"""
import json
import math
import sys
from pathlib import Path

VARIANTS = [  # file stem, label
    ("default", "QKV (`default-256`, the default model until session 14)"),
    ("seeds/qkv-seed2", "QKV, seed 2 (the seed check; not shipped)"),
    ("variant-gqa3", "GQA-3 (3 KV heads)"),
    ("variant-gqa2", "GQA-2 (2 KV heads)"),
    ("variant-mqa", "MQA (1 KV head)"),
    ("variant-k_eq_v", "Q-K=V"),
    ("variant-q_eq_k", "Q=K-V"),
    ("variant-q_eq_k_eq_v", "Q=K=V"),
    ("variant-k_eq_v_gqa2", "Q-K=V + GQA-2"),
]
# The thin-keys fine-tune starts from the default model: two rows, its start (the post-hoc
# rank-r keys) and its end, with the keys cached as rank-r latents.
THIN_KEYS = "variant-thin_keys"


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "build-train/train")
    rows = {}
    for stem, _ in VARIANTS:
        path = folder / f"{stem}.json"
        if path.exists():
            rows[stem] = json.loads(path.read_text())
    shipped = (Path(__file__).resolve().parent.parent /
               "assets/models/variants/default-256/train_results.json")
    if "default" not in rows and shipped.exists():  # the shipped model's own record
        rows["default"] = json.loads(shipped.read_text())
    if "default" not in rows:
        print(f"no {folder}/default.json: train the default model first", file=sys.stderr)
        return 2
    base = rows["default"]
    base_cache = base["kv_bytes_per_token_fp16"]
    base_ppl = base["validation"]["perplexity"]
    print("| variant | parameters | KV bytes/token (fp16) | Δ cache | val nats/char | bits/char | "
          "perplexity/char | Δ perplexity vs QKV | last-10% held-out verses | training time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for stem, label in VARIANTS:
        r = rows.get(stem)
        if r is None:
            print(f"| {label} | not trained here | | | | | | | | |")
            continue
        v = r["validation"]
        cache = r["kv_bytes_per_token_fp16"]
        print(f"| {label} | {r['parameters']:,} | {cache:,} | {100.0 * (cache / base_cache - 1):+.1f}% "
              f"| {v['nats']:.4f} | {v['bits']:.3f} | {v['perplexity']:.3f} "
              f"| {100.0 * (v['perplexity'] / base_ppl - 1):+.2f}% "
              f"| {r['validation_last_10_percent']['nats']:.4f} | {r['train_seconds'] / 60:.0f} min |")
        if r["steps"] != base["steps"] or r["options"]["lr"] != base["options"]["lr"] \
                or r["config"]["layers"] != base["config"]["layers"] \
                or r["config"]["width"] != base["config"]["width"]:
            print(f"<!-- WARNING: {stem} was not trained at the default model's recipe -->")
    r = rows.get(THIN_KEYS) or (json.loads((folder / f"{THIN_KEYS}.json").read_text())
                                if (folder / f"{THIN_KEYS}.json").exists() else None)
    if r is None:
        print("| Thin keys (QK fine-tune) | not trained here | | | | | | | | |")
        return 0
    rank = r["config"]["key_rank"]
    d = r["config"]["head_dim"]
    cache = r["kv_bytes_per_token_fp16"] * (rank + d) // (2 * d)  # keys as rank-r latents
    steps = r["steps"]
    for label, v, minutes in (
            (f"Keys of rank {rank}, post hoc (weight SVD of the default, no training)",
             r["validation_at_start"], None),
            (f"Thin keys: rank {rank} after a {steps}-step QK fine-tune of the default",
             r["validation"], r["train_seconds"] / 60)):
        print(f"| {label} | {r['parameters']:,} | {cache:,} | {100.0 * (cache / base_cache - 1):+.1f}% "
              f"| {v['nats']:.4f} | {v['bits']:.3f} | {v['perplexity']:.3f} "
              f"| {100.0 * (v['perplexity'] / base_ppl - 1):+.2f}% "
              f"| {(format(r['validation_last_10_percent']['nats'], '.4f') if minutes is not None else '—')} "
              f"| {f'+{minutes:.0f} min' if minutes is not None else '—'} |")
    control = folder / f"{THIN_KEYS}_control.json"
    if control.exists():  # the same fine-tune at full rank: what the extra training alone gives
        c = json.loads(control.read_text())
        v = c["validation"]
        print(f"| Control: the same {c['steps']}-step fine-tune at full rank (not shipped) "
              f"| {c['parameters']:,} | {c['kv_bytes_per_token_fp16']:,} | +0.0% "
              f"| {v['nats']:.4f} | {v['bits']:.3f} | {v['perplexity']:.3f} "
              f"| {100.0 * (v['perplexity'] / base_ppl - 1):+.2f}% "
              f"| {c['validation_last_10_percent']['nats']:.4f} | +{c['train_seconds'] / 60:.0f} min |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

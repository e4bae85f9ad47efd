#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The scaling check of ALGORITHMS.md §1c on a real model (docs/scaling-check.md): the error of the
probe queries over the context against kept tokens m, for m up to n/8 only (the asymptotic regime
the theory speaks of), with the log-log slope per method. Every kept token is chosen by the method
(no sinks or window, fp32 storage); the halving rows vary one knob from its defaults (the kernel the
walk balances: query-sampled, kernel=64, or the theory's key kernel, kernel=0).

Two errors per point, averaged over layers and heads:
  - the theorem's: the worst probe query's ‖o − ô‖ with values centred and scaled by their spread
    (HeadMetrics::valueScaledError), and
  - the mean over probe queries of ‖o − ô‖/‖o‖ (context_error).

    tools/scaling_check.py build/app/kvstudio-cli MODEL PROMPT_FILE CONTEXT

Each point is one `kvstudio-cli eval --json` (CPU backend, no model-level quality).
"""
import json
import math
import subprocess
import sys

cli, model, prompt, context = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
methods = [
    ("uniform sampling", "select.uniform:seed={seed}"),
    ("halving, sampled kernel (defaults)", "coreset.halving:seed={seed}"),
    ("halving, key kernel (kernel=0)", "coreset.halving:kernel=0,seed={seed}"),
]
common = ",sinks=0,window=0,precision=32"
seeds = [1, 2, 3]
sizes = []
m = 8
while m <= context // 8:
    sizes.append(m)
    m = int(round(m * 1.5))


def evaluate(setting):
    out = subprocess.run([cli, "eval", model, "--prompt-file", prompt, "--context", str(context),
                          "--scheme", setting, "--backend", "cpu", "--no-quality", "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    heads = r["heads"]
    worst = sum(h["value_scaled_error"] for h in heads) / len(heads)
    rho = sorted(h["rho_eff"] for h in heads)
    return worst, r["context_error"], r["probe_tokens"], rho


def slope(xs, ys):
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    sxy = sum((x - mx) * (y - my) for x, y in zip(lx, ly))
    b = sxy / sxx
    ss = sum((y - my) ** 2 for y in ly)
    res = sum((y - (my + b * (x - mx))) ** 2 for x, y in zip(lx, ly))
    return b, 1 - res / ss if ss > 0 else 1.0


rows = []
probe = None
rhos = None
for name, template in methods:
    worst, mean = [], []
    for m in sizes:
        w = c = 0.0
        for seed in seeds:
            setting = template.format(seed=seed) + common + f",tokens={m}"
            sw, sc, probe, rhos = evaluate(setting)
            w += sw / len(seeds)
            c += sc / len(seeds)
        worst.append(w)
        mean.append(c)
    rows.append((name, template.format(seed="1..3") + common, worst, mean))

print(f"context n = {context} tokens, {probe} probe tokens; kept m = {sizes[0]} … {sizes[-1]} "
      f"(≤ n/8); seeds {seeds[0]}–{seeds[-1]}; rho_eff over heads: median "
      f"{rhos[len(rhos) // 2]:.1f}, range {rhos[0]:.1f}–{rhos[-1]:.1f} (centred keys)\n")
print("| method | " + " | ".join(f"m = {m}" for m in sizes) +
      " | slope, worst probe (theorem's) | slope, mean ‖o − ô‖/‖o‖ |")
print("|---|" + "---|" * len(sizes) + "---|---|")
for name, setting, worst, mean in rows:
    sw, rw = slope(sizes, worst)
    sm, rm = slope(sizes, mean)
    cells = " | ".join(f"{w:.4f} / {c:.3f}" for w, c in zip(worst, mean))
    print(f"| {name} (`{setting}`) | {cells} | **{sw:.3f}** (R² {rw:.3f}) | **{sm:.3f}** (R² {rm:.3f}) |")
print("\n(cells: worst probe's value-scaled error / mean ‖o − ô‖/‖o‖, means over heads and seeds)")

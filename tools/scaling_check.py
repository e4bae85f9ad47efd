#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The scaling check of issue 5: the context-only attention-output error against kept tokens m for discrepancy
halving and uniform sampling (and the streaming variant), log-log slopes fitted by
`kvstudio-cli sweep`. Prints a Markdown table; docs/scaling-check.md is its output.

    tools/scaling_check.py build/app/kvstudio-cli MODEL PROMPT_FILE [CONTEXT]
"""
import json
import subprocess
import sys

cli, model, prompt = sys.argv[1:4]
context = sys.argv[4] if len(sys.argv) > 4 else "0"
schemes = [
    "select.uniform:precision=32,sinks=0,window=0",
    "coreset.halving:precision=32,sinks=0,window=0",
    "coreset.streaming:precision=32,sinks=0,window=0",
    "coreset.halving:precision=32,sinks=0,window=0,kernel=0,gamma=4,block=128",
]
out = subprocess.run([cli, "sweep", model, "--prompt-file", prompt, "--context", context,
                      "--scheme", " ".join(schemes), "--range", "0.03:0.5:7", "--backend", "cpu",
                      "--no-quality", "--fit", "context_error", "--json"], check=True, capture_output=True, text=True).stdout
data = json.loads(out)
sweeps = data["sweeps"]
print(f"backend: {data['backend']}\n")
print("| kept tokens m | " + " | ".join(f"`{s['scheme']}`" for s in sweeps) + " |")
print("|---|" + "---|" * len(sweeps))
for i in range(len(sweeps[0]["points"])):
    m = sweeps[0]["points"][i]["mean_kept_tokens"]
    cells = [f"{s['points'][i]['context_error']:.4f}" for s in sweeps]
    print(f"| {m:.0f} | " + " | ".join(cells) + " |")
print("| **slope** (log error vs log m) | " +
      " | ".join(f"**{s['slope_vs_kept']['slope']:.3f}** "
                 f"(R² {s['slope_vs_kept']['r2']:.3f})" for s in sweeps) + " |")

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Per-family tables of docs/schemes.md at the settings of ALGORITHMS.md §5, made by running
`kvstudio-cli eval --json` on the bundled model (and its trained variants), so they can be
regenerated when the default model changes.

    tools/scheme_tables.py [--cli build/app/kvstudio-cli] [--update docs/schemes.md]

Without --update the Markdown goes to stdout; with it, the text between the markers
<!-- scheme-tables:begin --> and <!-- scheme-tables:end --> in that file is replaced.
"""
import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The studio's start-up prompt (app/studio/startup.cpp, defaultPrompt()): Ecclesiastes 1:1-9, a
# held-out book of the 1,024-token default model.
PROMPT = (ROOT / "assets" / "prompts" / "held-out" / "03-ecclesiastes-1.txt").read_text()
# The trained variants have 256 positions and were trained on the every-20th-verse split (the
# Bible is their training text): they are compared with their QKV twin (variants/default-256) on
# the earlier start-up prompt, which is not Bible text and fits their context.
VARIANT_PROMPT = ("The key and value cache grows with every token the model reads. Which of these "
                  "tokens does attention really need, and how much memory could we save?")
BEGIN, END = "<!-- scheme-tables:begin -->", "<!-- scheme-tables:end -->"


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def evaluate(cli, model, scheme, prompt=PROMPT):
    return run_json([cli, "eval", str(model), "--prompt", prompt, "--scheme", scheme,
                     "--backend", "cpu", "--json"])


def fmt_kl(x):
    return f"{x:.2g}" if x >= 1e-3 or x == 0 else f"{x:.1e}"


def row(cli, model, scheme, claim=""):
    r = evaluate(cli, model, scheme)
    q = r["quality"]
    return (f"| `{scheme}` | {100 * r['memory']['fraction_of_fp16']:.1f}% | {fmt_kl(q['kl_mean'])} "
            f"| {q['perplexity_change_percent']:+.1f}% | {r['head_output_error']:.3f} | {claim} |"), r


HEADER = ("| setting | memory (of fp16) | next-token KL (nats/token) | Δ perplexity (per token) "
          "| head output error | the paper |\n|---|---|---|---|---|---|")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=str(ROOT / "build" / "app" / "kvstudio-cli"))
    ap.add_argument("--models", default=str(ROOT / "assets" / "models"))
    ap.add_argument("--update", help="Markdown file whose marked section is replaced")
    a = ap.parse_args()
    models = pathlib.Path(a.models)
    default = models / "default"
    d = run_json([a.cli, "info", str(default), "--json"])["config"]["head_dim"]
    exact = evaluate(a.cli, default, "identity:precision=16")
    out = [f"Made by `tools/scheme_tables.py` (bundled default model, 1,024 positions, d = {d}; "
           "the studio's start-up prompt, Ecclesiastes 1:1–9 from a held-out book, "
           f"{exact['context_tokens']} context and {exact['probe_tokens']} "
           "probe tokens; CPU backend; seed 0; one prompt, so no spread — issue #15 adds prompt "
           "sets). Memory is a fraction of the same run's fp16 cache of the context; KL and the "
           "perplexity change are per token over the probe.", ""]

    out += ["**Coresets and selection** (§5 #1)", "", HEADER]
    for keep, claim in (("0.5", ""), ("0.25", "halving beats uniform"), ("0.125", "")):
        for s in ("select.uniform", "select.snapkv", "coreset.halving"):
            out.append(row(a.cli, default, f"{s}:keep={keep}", claim if s == "coreset.halving" else "")[0])

    out += ["", "**Factored keys** (§5 #2; `rope_pairs` is the channel-selection mode)", "", HEADER]
    for r in (d // 2, d // 4, d // 8):
        for s in ("factor.weight_svd", "factor.data_aware", "factor.rope_pairs"):
            claim = "−75% key cache, ≈2% quality (after a QK fine-tune)" if (
                r == d // 4 and s == "factor.weight_svd") else ""
            out.append(row(a.cli, default, f"{s}:rank={r}", claim)[0])

    out += ["", "**Shared projections post hoc** (§5 #3–4)", "", HEADER]
    for k in (3, 2, 1):
        for s in ("share.pool", "share.lsq"):
            claim = "quality drops without uptraining" if (k == 1 and s == "share.pool") else ""
            out.append(row(a.cli, default, f"{s}:kv_heads={k}", claim)[0])
    out.append(row(a.cli, default, "share.kv_tie", "perplexity 20.8 → ~6,400 (collapse)")[0])
    out.append(row(a.cli, default, "share.kv_regress")[0])

    twin = models / "variants" / "default-256"
    if not (twin / "config.json").exists():
        sys.exit(f"scheme_tables: the bundled variant {twin} is missing")
    twin_exact = evaluate(a.cli, twin, "identity:precision=16", VARIANT_PROMPT)
    out += ["", "**Trained variants** (the honest answer: trained with the sharing, at 256 positions "
            "on the every-20th-verse split; perplexity per token on the earlier 148-character "
            "start-up prompt, which is not Bible text, against their QKV twin `default-256`'s "
            f"{twin_exact['quality']['perplexity_exact']:.3f}; cache per token against the twin's)",
            "", "| variant | cache (of the twin's) | perplexity | Δ perplexity | the paper |",
            "|---|---|---|---|---|"]
    base_ppl = twin_exact["quality"]["perplexity_exact"]
    base_bytes = twin_exact["memory"]["fp16_bytes"]
    for name, claim in (("gqa3", ""), ("gqa2", ""), ("mqa", ""),
                        ("k_eq_v", "+3.1% at −50% cache (Q-K=V)")):
        folder = models / "variants" / name
        if not (folder / "config.json").exists():
            sys.exit(f"scheme_tables: the bundled variant {folder} is missing")
        v = evaluate(a.cli, folder, "identity:precision=16", VARIANT_PROMPT)
        ppl = v["quality"]["perplexity_exact"]
        out.append(f"| {name} | {100 * v['memory']['fp16_bytes'] / base_bytes:.1f}% | {ppl:.3f} "
                   f"| {100 * (ppl / base_ppl - 1):+.1f}% | {claim} |")
    # Thin keys: the QK fine-tune at rank d/4, cached as rank-r latents by the weight SVD at its
    # declared rank (exact for this model up to fp16), against its twin's exact cache.
    folder = models / "variants" / "thin_keys"
    if not (folder / "config.json").exists():
        sys.exit(f"scheme_tables: the bundled variant {folder} is missing")
    rank = run_json([a.cli, "info", str(folder), "--json"])["config"]["key_rank"]
    for scheme, label in ((f"identity:precision=16", "thin_keys, cache kept dense"),
                          (f"factor.weight_svd:rank={rank}",
                           f"thin_keys + `factor.weight_svd:rank={rank}`")):
        v = evaluate(a.cli, folder, scheme, VARIANT_PROMPT)
        ppl = v["quality"]["perplexity_compressed"]
        claim = "−75% key cache, ≈2% quality" if scheme.startswith("factor") else ""
        out.append(f"| {label} | {100 * v['memory']['bytes']['total'] / base_bytes:.1f}% "
                   f"| {ppl:.3f} | {100 * (ppl / base_ppl - 1):+.1f}% | {claim} |")

    out += ["", "**Codecs** (§5 #5)", "", HEADER]
    for s, claim in (("codec.uniform:key_bits=4,value_bits=2", "~3 bits, small loss (7B)"),
                     (f"codec.uniform:key_bits=4,value_bits=2,rotation={d & -d}",
                      "rotation: 4-bit close to fp16 (QuaRot, weights and activations too)"),
                     ("codec.uniform:key_bits=4,value_bits=2,pre_rope=1",
                      "keys before RoPE quantize better (KVQuant)"),
                     ("codec.uniform:key_bits=2,value_bits=4", ""),
                     ("codec.uniform:key_bits=2,value_bits=4,pre_rope=1", ""),
                     ("codec.uniform:bits=2", ""),
                     (f"codec.uniform:bits=2,rotation={d & -d}", ""),
                     ("codec.uniform:bits=2,recent=16",
                      "2-bit with an fp16 recent window ≈ fp16 quality (KIVI, 128 of 4k+ tokens)"),
                     ("codec.uniform:key_bits=4,value_bits=2,recent=16", ""),
                     ("codec.uniform:bits=3", ""),
                     ("codec.uniform:bits=3,outliers=0.01",
                      "1% outliers kept dense: 3-bit within 0.1 perplexity of fp16 (KVQuant, "
                      "with pre-RoPE keys and non-uniform levels)"),
                     ("codec.uniform:bits=2,outliers=0.01", ""),
                     ("codec.uniform:key_bits=4,value_bits=2,outliers=0.01", ""),
                     ("codec.entropy:alpha=0.5", ""), ("codec.entropy:alpha=1", ""),
                     ("codec.entropy:alpha=2", ""),
                     (f"codec.entropy:alpha=1,rotation={d & -d}", "")):
        out.append(row(a.cli, default, s, claim)[0])
    text = "\n".join(out) + "\n"

    if not a.update:
        sys.stdout.write(text)
        return
    path = pathlib.Path(a.update)
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"scheme_tables: {path} has no {BEGIN} … {END} section")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(head + BEGIN + "\n" + text + END + tail)
    tmp.replace(path)  # atomic: a failed run leaves the document as it was


if __name__ == "__main__":
    main()

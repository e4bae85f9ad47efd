#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/): real-shaped files from the
# bundled model, `kvstudio-cli make-model` folders and captures, SentencePiece models trained on
# the held-out prompts, and small hand-written files for the features the seeds above lack.
# By hand, when a parser learns something new:
#   tests/fuzz/make_corpus.py --cli build/app/kvstudio-cli
import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LIMIT = 16 * 1024  # seeds stay small: a few KiB each


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > LIMIT:
        raise SystemExit(f"{target}/{name}: {len(data)} bytes is over the {LIMIT}-byte seed limit")
    out = HERE / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)]"""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset, data = 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def run(*args, **kw):
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True, help="path of kvstudio-cli")
    cli = Path(ap.parse_args().cli).resolve()
    for d in (HERE / "corpus").glob("*"):
        shutil.rmtree(d)
    tmp = Path(tempfile.mkdtemp(prefix="kvs-corpus-"))
    try:
        make(cli, tmp)
    finally:
        shutil.rmtree(tmp)


def make(cli, tmp):
    presets = ["tiny-gpt2", "tiny-gpt2-untied", "tiny-llama", "tiny-llama-gqa", "tiny-qwen2",
               "tiny-mistral"]
    for p in presets:
        run(cli, "make-model", p, "--out", tmp / p)
    bundled = ROOT / "assets" / "models" / "default"
    variants = sorted((ROOT / "assets" / "models" / "variants").glob("*"))

    # config.json
    for folder in [bundled, *variants, *(tmp / p for p in presets)]:
        put("model_config", folder.name + ".json", (folder / "config.json").read_bytes())
    llama = json.loads((tmp / "tiny-llama" / "config.json").read_text())
    for name, scaling in {
        "rope-llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        "rope-yarn": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                      "beta_fast": 32, "beta_slow": 1, "attention_factor": 1.1},
        "rope-dynamic": {"type": "dynamic", "factor": 2.0},
        "rope-linear": {"type": "linear", "factor": 2.0},
    }.items():
        put("model_config", name + ".json", json.dumps(dict(llama, rope_scaling=scaling)))
    put("model_config", "qwen2-window.json",
        json.dumps(dict(llama, model_type="qwen2", architectures=["Qwen2ForCausalLM"],
                        use_sliding_window=True, sliding_window=16, max_window_layers=1)))

    # model.safetensors.index.json: the generator's, and ones that fit the target's fixed shards
    for p in ["tiny-gpt2-untied", "tiny-llama-gqa"]:
        put("safetensors_index", p + ".json",
            (tmp / p / "model.safetensors.index.json").read_bytes())
    shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    weight_map = {"wte.weight": shard1, "h.0.attn.c_attn.weight": shard1,
                  "h.0.mlp.c_fc.weight": shard2, "ln_f.weight": shard2}
    put("safetensors_index", "fits-shards.json",
        json.dumps({"metadata": {"total_size": 72}, "weight_map": weight_map}, indent=2))
    put("safetensors_index", "one-shard.json",
        json.dumps({"weight_map": {"wte.weight": shard1, "h.0.attn.c_attn.weight": shard1}}))

    # safetensors files: every dtype, scalars, empty tensors, metadata; captures (below)
    put("safetensors_header", "dtypes.safetensors", safetensors([
        ("bool", "BOOL", [2], b"\x00\x01"), ("u8", "U8", [3], b"abc"), ("i8", "I8", [1], b"\xff"),
        ("i16", "I16", [2], b"\x01\x00\xff\xff"), ("u16", "U16", [1], b"\x02\x00"),
        ("f16", "F16", [2, 2], struct.pack("<4e", 1.0, -2.0, 0.5, 65504.0)),
        ("bf16", "BF16", [2], b"\x80\x3f\x00\xc0"), ("i32", "I32", [2], struct.pack("<2i", 7, -7)),
        ("u32", "U32", [1], struct.pack("<I", 9)), ("f32", "F32", [3], struct.pack("<3f", 1, 2, 3)),
        ("f64", "F64", [1], struct.pack("<d", 3.5)), ("i64", "I64", [1], struct.pack("<q", -1)),
        ("u64", "U64", [1], struct.pack("<Q", 1)), ("f8e4m3", "F8_E4M3", [2], b"\x38\xb8"),
        ("f8e5m2", "F8_E5M2", [2], b"\x3c\xbc")], {"format": "pt"}))
    put("safetensors_header", "scalar-and-empty.safetensors", safetensors([
        ("scalar", "F32", [], struct.pack("<f", 1.5)), ("empty", "F16", [0, 4], b""),
        ("w", "BF16", [2, 3], bytes(12))]))
    put("safetensors_header", "gpt2-block.safetensors", safetensors([
        ("h.0.attn.c_attn.weight", "F16", [4, 12], bytes(96)),
        ("h.0.attn.c_attn.bias", "F16", [12], bytes(24)),
        ("h.0.ln_1.weight", "F32", [4], struct.pack("<4f", 1, 1, 1, 1))],
        {"format": "pt", "kvstudio_file": "model"}))

    # captures: learned positions (GPT-2) and RoPE with grouped queries (Llama GQA), 3 tokens
    prompt = tmp / "prompt.txt"
    prompt.write_text("God")
    for p in ["tiny-gpt2", "tiny-llama-gqa"]:
        out = tmp / (p + ".capture.safetensors")
        run(cli, "capture", tmp / p, "--prompt-file", prompt, "--out", out, "--f16")
        put("capture", p + ".safetensors", out.read_bytes())
        put("safetensors_header", p + "-capture.safetensors", out.read_bytes())
        put("output_check", p + "-capture", b"\x00" + out.read_bytes())

    # tokenizer.json
    put("tokenizer_json", "bundled.json", (bundled / "tokenizer.json").read_bytes())
    put("tokenizer_json", "byte-level.json", (tmp / "tiny-gpt2" / "tokenizer.json").read_bytes())
    byte_vocab = {c: i for i, c in enumerate(["!", "a", "b", "c", "Ġ", "ab", "Ġa", "Ġab", "<|e|>"])}
    for name, merges in {"merges-strings": ["a b", "Ġ a", "Ġa b"],
                         "merges-pairs": [["a", "b"], ["Ġ", "a"], ["Ġa", "b"]]}.items():
        put("tokenizer_json", name + ".json", json.dumps({
            "version": "1.0",
            "added_tokens": [{"id": 8, "content": "<|e|>", "special": True, "lstrip": False,
                              "rstrip": False, "single_word": False, "normalized": False}],
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n"
                                              "\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}"
                                              "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
                 "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False}]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                      "byte_fallback": False, "ignore_merges": False, "vocab": byte_vocab,
                      "merges": merges}}))
    put("tokenizer_json", "metaspace-bytefallback.json", json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                         {"id": 1, "content": "<s>", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "},
                                                  "content": "▁"}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                          "split": False},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": {"<unk>": 0, "<s>": 1, "<0x41>": 2, "<0xC3>": 3, "<0xA9>": 4, "▁": 5,
                            "t": 6, "h": 7, "e": 8, "▁t": 9, "he": 10, "▁the": 11},
                  "merges": ["▁ t", "h e", "▁t he"]}}))
    put("tokenizer_json", "whitespace-digits.json", json.dumps({
        "model": {"type": "BPE", "vocab": {"[UNK]": 0, "1": 1, "2": 2, "a": 3, "b": 4, "ab": 5},
                  "merges": ["a b"], "unk_token": "[UNK]"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True},
            {"type": "Whitespace"},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious"}]},
        "decoder": None, "normalizer": None, "added_tokens": []}))

    # vocab.json + merges.txt
    gpt2_vocab = {c: i for i, c in enumerate(
        ["!", "\"", "a", "b", "c", "d", "e", "h", "l", "o", "r", "t", "w", "Ġ", "Ċ", "Ġt", "he",
         "Ġthe", "ll", "Ġw", "or", "<|endoftext|>"])}
    merges = "#version: 0.2\nĠ t\nh e\nĠt he\nl l\nĠ w\no r\n"
    put("gpt2_vocab_merges", "small.txt", json.dumps(gpt2_vocab) + "\n=====MERGES\n" + merges)
    put("gpt2_vocab_merges", "no-header.txt",
        json.dumps(gpt2_vocab, indent=1) + "\n=====MERGES\n" + "Ġ t\nh e\r\n\n")

    # tokenizer_config.json (bos/eos as strings, token objects, null)
    put("tokenizer_config", "bundled.json", (bundled / "tokenizer_config.json").read_bytes())
    put("tokenizer_config", "strings.json", json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    put("tokenizer_config", "objects.json", json.dumps({
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False},
        "eos_token": {"content": "</s>"}, "add_bos_token": True}))
    put("tokenizer_config", "null.json", json.dumps({"bos_token": None, "eos_token": "zzz"}))

    # SentencePiece models trained on the held-out prompts (BPE and unigram, byte fallback)
    corpus = tmp / "spm-corpus.txt"
    corpus.write_text("".join(p.read_text() for p in
                              sorted((ROOT / "assets" / "prompts" / "held-out").glob("*.txt"))))
    trainer = tmp / "spm_train"
    (tmp / "spm_train.cpp").write_text(
        "#include <sentencepiece_trainer.h>\n#include <iostream>\n"
        "int main(int, char** argv) { auto s = sentencepiece::SentencePieceTrainer::Train(argv[1]);"
        " if (!s.ok()) { std::cerr << s.ToString() << '\\n'; return 1; } }\n")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sentencepiece"], check=True,
                           capture_output=True, text=True).stdout.split()
    run("c++", "-O1", tmp / "spm_train.cpp", "-o", trainer, *flags, "-lsentencepiece_train")
    for kind, size in [("bpe", 330), ("unigram", 330)]:
        prefix = tmp / ("spm_" + kind)
        run(trainer, f"--input={corpus} --model_prefix={prefix} --model_type={kind} "
            f"--vocab_size={size} --byte_fallback=true --character_coverage=1.0 "
            "--normalization_rule_name=identity --remove_extra_whitespaces=false "
            "--hard_vocab_limit=false --num_threads=1 --minloglevel=2", stderr=subprocess.DEVNULL)
        put("sentencepiece", kind + ".model", (prefix.with_suffix(".model")).read_bytes())

    # sessions (.kvsession), as the studio writes them, and a version-1 file with indices
    session = {
        "kvstudio_session": 1, "kvstudio_file": "session", "version": "0.1.0",
        "model": "../models/default", "model_absolute": "/nonexistent/models/default",
        "model_checkpoint": "", "prompt": "In the beginning God created the heaven and the earth.",
        "context_tokens": 40,
        "schemes": ["identity", "select.snapkv:keep=0.25,window=8",
                    "factor.weight_svd:rank=8+codec.uniform:bits=4", "codec.entropy"],
        "view": {"tab": 1, "focused_scheme": 2, "layer": 0, "head": 1,
                 "attention_mode": "difference", "attention_colour_scale": "sqrt",
                 "metric": "kl_nats", "theme": "dark", "spectrum_head": [0, 1],
                 "colour_by": "family"}}
    put("session", "full.kvsession", json.dumps(session, indent=4))
    put("session", "version1-indices.kvsession", json.dumps({
        "kvstudio_session": 1, "model": "", "prompt": "x", "schemes": ["select.uniform:keep=0.5"],
        "view": {"attention_mode": 2, "metric": 1}}))
    put("session", "minimal.kvsession", '{"kvstudio_session": 1}')

    # the output writer's ownership check: marked JSON, old marks, sidecars (first byte: 1)
    put("output_check", "marked-json", b"\x00" + json.dumps(
        {"kvstudio_file": "session", "x": [1, 2]}).encode())
    put("output_check", "old-session-mark", b"\x00  " + json.dumps({"kvstudio_session": 1}).encode())
    put("output_check", "foreign-text", b"\x00Dear diary, today I ...\n")
    figure = b"\x89PNG\r\n\x1a\nnot really a picture"
    fnv = 0xcbf29ce484222325
    for byte in figure:
        fnv = ((fnv ^ byte) * 0x100000001b3) % 2**64
    put("output_check", "sidecar", b"\x01" + json.dumps(
        {"kvstudio_file": "export-sidecar", "file": "figure.png", "bytes": len(figure),
         "fnv1a64": f"{fnv:016x}"}).encode())

    # sweep journals (kvs/study.h): a finished study with seeds and skipped settings, one shard,
    # and a shard killed in the middle of a line
    prompts = tmp / "prompts"
    prompts.mkdir()
    (prompts / "a.txt").write_text("In the beginning was the word.")
    (prompts / "b.txt").write_text("Vanity of vanities, saith the Preacher.")
    model = tmp / "tiny-llama-gqa"
    study = [cli, "sweep", model, "--prompt-set", prompts, "--backend", "cpu"]
    run(*study, "--scheme", "select.uniform codec.uniform:group=32", "--seeds", "2",
        "--journal", tmp / "complete.jsonl")
    run(*study, "--scheme", "select.snapkv", "--values", "0.25,1", "--shard", "1/2",
        "--journal", tmp / "shard.jsonl")
    put("sweep_journal", "complete-seeds-skips.jsonl", (tmp / "complete.jsonl").read_bytes())
    shard = (tmp / "shard.jsonl").read_bytes()
    put("sweep_journal", "shard-1-of-2.jsonl", shard)
    put("sweep_journal", "torn-last-line.jsonl", shard + b'{"job": 3, "kl_me')


if __name__ == "__main__":
    main()

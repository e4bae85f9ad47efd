#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the Hugging Face reference fixtures for the forward-pass tests: random GPT-2 and Llama-family
# models saved with save_pretrained, plus reference logits and per-layer K/V computed by
# transformers in fp32, as safetensors. Needs torch, transformers and safetensors (an NVIDIA
# machine of the device tool has them); the outputs are small (< 2 MB in all) and are committed
# under tests/core/data/hf/ for CI, which has no torch.
#
#   python3 tests/tools/make_hf_reference.py --out tests/core/data/hf
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

TOKENS = [3, 17, 42, 99, 7, 250, 128, 64, 1, 200, 33, 5, 77, 180, 12, 9]


def nontrivial_(model, seed):
    # Random weights with norms and biases away from their defaults, so every path matters.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[-1] ** 0.5))


def configs():
    yield "gpt2", GPT2LMHeadModel, GPT2Config(vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                                               resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    yield "llama_gqa", LlamaForCausalLM, LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=96,
                                                     num_hidden_layers=2, num_attention_heads=8,
                                                     num_key_value_heads=2, head_dim=12,
                                                     max_position_embeddings=128, rope_theta=500000.0,
                                                     rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                   "low_freq_factor": 1.0,
                                                                   "high_freq_factor": 4.0,
                                                                   "original_max_position_embeddings": 32},
                                                     attention_bias=True, tie_word_embeddings=False)
    yield "qwen2", Qwen2ForCausalLM, Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=96,
                                                 num_hidden_layers=2, num_attention_heads=4,
                                                 num_key_value_heads=2, max_position_embeddings=128,
                                                 rope_scaling={"type": "linear", "factor": 2.0},
                                                 tie_word_embeddings=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for i, (name, cls, cfg) in enumerate(configs()):
        torch.manual_seed(i)
        model = cls(cfg).eval().float()
        nontrivial_(model, 1000 + i)
        folder = os.path.join(args.out, name)
        model.save_pretrained(folder, safe_serialization=True)
        ids = torch.tensor([TOKENS])
        with torch.no_grad():
            out = model(ids, use_cache=True, output_hidden_states=False)
        tensors = {"tokens": ids[0].to(torch.int32), "logits": out.logits[0].contiguous()}
        cache = out.past_key_values
        for layer in range(cfg.num_hidden_layers if hasattr(cfg, "num_hidden_layers") else cfg.n_layer):
            k, v = (cache[layer][0], cache[layer][1]) if not hasattr(cache, "layers") else (
                cache.layers[layer].keys, cache.layers[layer].values)
            tensors[f"layers.{layer}.keys"] = k[0].contiguous()    # kv_heads × n × head_dim, post-RoPE
            tensors[f"layers.{layer}.values"] = v[0].contiguous()
        save_file(tensors, os.path.join(folder, "reference.safetensors"))
        with open(os.path.join(folder, "reference.json"), "w") as f:
            json.dump({"tokens": TOKENS, "transformers": __import__("transformers").__version__,
                       "torch": torch.__version__}, f, indent=2)
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()

"""SmolLM2-135M-Instruct from the GGUF: load time cold / warm, plain greedy tokens/s of the lean
forward (fp32, bf16, batch 1), and greedy agreement with transformers' GGUF load of the same file.

    .venv/bin/python bench/bench_smollm2.py --threads 1 --tokens 64 --compare

Cold = GGUF read + dequantize + cache write into a fresh temporary cache dir; warm = the same
load again from that cache (same process, file in the page cache). Agreement runs only with
--compare and transformers installed (HF_HUB_OFFLINE=1: nothing is fetched).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from tt_specdec.models.gguf import load_smollm2, smollm2_gguf_path  # noqa: E402
from tt_specdec.models.hf_tokenizer import load_smollm2_tokenizer  # noqa: E402
from tt_specdec.speculative import generate_plain  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "user", "content": "Explain what a hash table is in two sentences."}],
    [{"role": "user", "content": "Write a Python function that reverses a string."}],
    [{"role": "user", "content": "Summarise: The meeting moved to Tuesday because the room was booked."}],
    "def fibonacci(n):\n    ",
    "The three primary colours are",
    "Once upon a time, in a small village by the mountains,",
    "import numpy as np\n\ndef softmax(x):\n",
]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def hf_greedy(hf, ids: list[int], n: int) -> list[int]:
    out_ids = []
    with torch.inference_mode():
        out = hf(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            out_ids.append(int(nxt))
            out = hf(nxt, past_key_values=out.past_key_values, use_cache=True)
    return out_ids


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    prefix = []
    for x, y in zip(a, b):
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        prefix.append(n)
    total = sum(len(x) for x in a)
    return {"identical_sequences": sum(x == y for x, y in zip(a, b)), "sequences": len(a),
            "mean_common_prefix": sum(prefix) / len(prefix), "common_prefix_tokens": sum(prefix),
            "tokens": total, "positionwise_equal": sum(u == v for x, y in zip(a, b) for u, v in zip(x, y)) / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokens", type=int, default=64, help="new tokens per prompt")
    p.add_argument("--compare", action="store_true", help="greedy agreement with transformers")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    res: dict = {"threads": args.threads, "tokens": args.tokens, "torch": torch.__version__}

    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("TT_SPECDEC_CACHE")
        os.environ["TT_SPECDEC_CACHE"] = tmp
        try:
            _, res["load_cold_s"] = timed(lambda: load_smollm2(torch.float32))
            _, res["load_warm_s"] = timed(lambda: load_smollm2(torch.float32))
            _, res["load_warm_bf16_s"] = timed(lambda: load_smollm2(torch.bfloat16))
            _, res["tokenizer_cold_s"] = timed(load_smollm2_tokenizer)
            tok, res["tokenizer_warm_s"] = timed(load_smollm2_tokenizer)
        finally:
            if old is None:
                os.environ.pop("TT_SPECDEC_CACHE")
            else:
                os.environ["TT_SPECDEC_CACHE"] = old
    prompts = [tok.encode(tok.apply_chat_template(q) if isinstance(q, list) else q) for q in PROMPTS]

    ours = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = load_smollm2(dtype, max_seq_len=1024)
        generate_plain(model, [prompts[0]], max_new_tokens=4)  # warm-up
        outs, decode_s, new = [], 0.0, 0
        for ids in prompts:  # batch 1, no eos stop: every prompt decodes --tokens tokens
            gen = generate_plain(model, [ids], max_new_tokens=args.tokens)
            outs.append(gen.tokens[0])
            decode_s += gen.stats.total_s - gen.stats.ttft_s
            new += gen.stats.new_tokens - 1  # the first token comes from the prefill
        ours[name] = outs
        res[f"greedy_tok_s_{name}"] = new / decode_s
        res[f"decode_ms_per_token_{name}"] = 1e3 * decode_s / new
        del model
    res["bf16_vs_fp32_ours"] = agreement(ours["bf16"], ours["fp32"])

    if args.compare:
        import transformers

        path = smollm2_gguf_path()
        hf, res["transformers_load_s"] = timed(lambda: transformers.AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32).eval())
        t = time.perf_counter()
        theirs = [hf_greedy(hf, ids, args.tokens) for ids in prompts]
        res["transformers_fp32_tok_s_incl_prefill"] = sum(map(len, theirs)) / (time.perf_counter() - t)
        res["ours_fp32_vs_transformers_fp32"] = agreement(ours["fp32"], theirs)
        res["ours_bf16_vs_transformers_fp32"] = agreement(ours["bf16"], theirs)
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()

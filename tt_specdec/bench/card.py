"""`tt-specdec bench --device`: the fused ops' kernels on a card (ttnn.generic_op) against the torch ops."""
from __future__ import annotations

from tt_specdec.runtime import device


def bench_card(args) -> int:
    """`tt-specdec bench --device`: per k, the greedy accept_prefix and rollback_kv kernels on the card
    (device-resident ttnn tensors, ttnn.generic_op) against the torch ops on the same inputs; every
    result is compared with the torch one, and a mismatch fails the run."""
    reason = device.unavailable_reason()
    if reason:
        print(f"tt-specdec bench --device: skipped: {reason}")
        return 0
    import time

    import torch

    from tt_specdec import ops

    ttnn = device.require_ttnn()
    dev = device.device()
    B, V = 1, 49152  # one sequence, SmolLM2's vocabulary
    ks = [k for k in args.k if isinstance(k, int) and k > 0] or [4]
    repeats = max(3, args.repeats * 10)
    print(f"accept_prefix (greedy, bf16 logits [B={B}, k+1, V={V}]) and rollback_kv, ms per call, "
          f"median of {repeats}")
    print(f"{'k':>3} {'torch accept':>13} {'card accept':>12} {'torch rollback':>15} {'card rollback':>14}")
    g = torch.Generator().manual_seed(args.seed)

    def timed(fn):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = fn()
            ttnn.synchronize_device(dev)
            times.append(time.perf_counter() - t0)
        return result, sorted(times)[len(times) // 2] * 1e3

    def on_card(x, dtype):
        return ttnn.from_torch(x, dtype=dtype, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)

    for k in ks:
        logits = (torch.randn(B, k + 1, V, generator=g) * 3).to(torch.bfloat16)
        drafts = logits.argmax(-1)[:, :k].clone()
        t_logits, t_drafts = on_card(logits, ttnn.bfloat16), on_card(drafts.to(torch.int32), ttnn.int32)
        (n, out), torch_ms = timed(lambda: ops.accept_prefix(logits, drafts))
        (t_n, t_out), card_ms = timed(lambda: ops.accept_prefix(t_logits, t_drafts))
        if not (torch.equal(ttnn.to_torch(t_n).long().view(-1), n) and torch.equal(ttnn.to_torch(t_out).long(), out)):
            print(f"tt-specdec bench --device: accept_prefix k={k}: the card's result differs from torch's")
            return 1
        pos, last = torch.tensor([100] * B), torch.tensor([7] * B)
        row = lambda x: on_card(x.to(torch.int32).view(1, B), ttnn.int32)  # noqa: E731
        want, torch_rb = timed(lambda: ops.rollback_kv(pos, last, n, out))
        args_card = (row(pos), row(last), row(n), on_card(out.to(torch.int32), ttnn.int32))
        got, card_rb = timed(lambda: ops.rollback_kv(*args_card))
        if not torch.equal(ttnn.to_torch(got.pos).long().view(-1), want.pos):
            print(f"tt-specdec bench --device: rollback_kv k={k}: the card's result differs from torch's")
            return 1
        print(f"{k:>3} {torch_ms:>13.3f} {card_ms:>12.3f} {torch_rb:>15.3f} {card_rb:>14.3f}")
    return bench_step_card(args, ks)


def bench_step_card(args, ks: list[int]) -> int:
    """The whole step on the card (SpeculativeDecoder engine="ttnn"): tok/s of the ttnn target alone and of
    greedy speculation per k on the pair's prompts; the speculative tokens must equal the target's alone."""
    import time

    from tt_specdec.api import SpeculativeDecoder, chat_prompt, load_pair
    from tt_specdec.bench import harness

    pair = load_pair(args.pair)
    prompts = [pair.tokenizer.encode(chat_prompt(pair.tokenizer, p))
               for _, p in harness.prompt_set(args.pair, args.prompts or 4, None)][:4]
    print(f"\nthe whole step on the card ({args.pair}, greedy, {len(prompts)} prompts one at a time, "
          f"{args.max_new_tokens} new tokens)")
    base, tok_s = None, {}
    for k in [0] + ks:
        dec = SpeculativeDecoder(pair, "model", k, engine="ttnn", trace=False if args.no_trace else None)
        t0, out, n = time.perf_counter(), [], 0
        for p in prompts:
            gen = dec.generate_ids([p], args.max_new_tokens)
            out.append(gen.tokens[0])
            n += len(gen.tokens[0])
        tok_s[k] = n / (time.perf_counter() - t0)
        if base is None:
            base = out
        elif out != base:
            print(f"tt-specdec bench --device: k={k}: greedy speculative tokens differ from the ttnn target's alone")
            return 1
        print(f"  k={k}: {tok_s[k]:.1f} tok/s, speedup {tok_s[k] / tok_s[0]:.2f}x")
    return 0

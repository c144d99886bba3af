"""Greedy speculative decoding is lossless: token for token the target's own greedy output
(generate_plain, same target, same precision), for varied prompts, k = 1..8, batch 1 and 3,
both drafters; also with EOS stopping per row, exact max_new_tokens, and bfloat16.

Every prompt runs at every k in a batch of 3 (rows of different prompt lengths); to keep the
suite lean each k runs 4 of the 12 prompts alone (batch 1), each prompt alone at 2-3 values of k.

A k-row verify and a 1-row decode sum in different orders, so where the target's top two
logits are within rounding of each other the two may pick different tokens. Every divergence
is checked: at the first differing position the target's logits for the common prefix are
recomputed, and both candidate tokens must be within a stated bound of the top logit. Such
near-ties are counted in the terminal summary; any other divergence fails.
"""
import pytest
import torch

from tt_specdec.drafters import ModelDrafter, NgramDrafter
from tt_specdec.speculative.loop import generate_plain, speculative_generate

PROMPTS = [
    "def fibonacci(n):\n    ",
    "import os\nimport sys\nimport re\n",
    "x",  # one token: the draft's prefill and the n-gram lookup start from nothing
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(",
    "The quick brown fox jumps over the lazy dog. ",
    "    return self._",
    "# Copyright (c) 2001 Python Software Foundation.\n# ",
    "Speculative decoding drafts tokens cheaply and verifies them in one pass",
    "if __name__ == '__main__':\n    main(",
    "Le café était fermé — naïve résumé: ",  # multi-byte UTF-8
    "try:\n    import _thread\nexcept ImportError:\n    ",
]
PROMPT_IDS = [list(p.encode()) for p in PROMPTS]
GROUPS = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11)]  # batch-3 rows, prompt lengths differ within a group
SINGLES_FOR_K = {k: [i for i in range(len(PROMPTS)) if (i + k) % 3 == 0] for k in range(1, 9)}
MAX_NEW = 32

# Bound on |top logit - logit of either diverging token| for a divergence to count as a near-tie.
# fp32: verify (T = k+1), decode (T = 1) and prefill (T = L) logits of the tiny target differ by
# at most ~1.3e-5 (measured, |logits| <= ~19), so 1e-4 leaves margin and nothing more.
FP32_BOUND = 1e-4
# bf16: two bf16 ulps for logits in [16, 32) (the target's top logits reach ~19); the cache
# paths were measured to agree exactly in bf16, forward_train differs by one ulp (0.125).
BF16_BOUND = 0.25


def drafter_for(name: str, draft):
    return ModelDrafter(draft) if name == "model" else NgramDrafter()


def recompute_logits(target, prefix: list[int]) -> torch.Tensor:
    """[V] the target's logits after `prefix`, from one fresh prefill over all of it."""
    target.allocate_cache(1, len(prefix))
    return target.prefill(torch.tensor([prefix]), torch.tensor([len(prefix)]))[0].float()


def check_lossless(target, prompts, spec, plain, bound, near_tie_log, label) -> int:
    """Assert each row of spec equals plain, or first differs at a proven near-tie; returns the
    number of near-ties (also logged). Past a near-tie the two continuations are unrelated."""
    near_ties = 0
    for b, (prompt, s, p) in enumerate(zip(prompts, spec, plain)):
        if s == p:
            continue
        i = next((j for j, (x, y) in enumerate(zip(s, p)) if x != y), None)
        assert i is not None, f"{label} row {b}: same tokens but {len(s)} vs {len(p)} of them:\n{s}\n{p}"
        logits = recompute_logits(target, prompt + p[:i])
        top = float(logits.max())
        gaps = (top - float(logits[s[i]]), top - float(logits[p[i]]))
        assert max(gaps) < bound, (
            f"{label} row {b}: speculative token {s[i]} != plain token {p[i]} at new token {i}, and it is "
            f"not a near-tie: logit gaps to the top {gaps[0]:.3g}, {gaps[1]:.3g} (bound {bound})")
        near_ties += 1
        near_tie_log.append(f"{label} row {b} token {i}: {s[i]} vs {p[i]}, "
                            f"|logit difference| {abs(gaps[0] - gaps[1]):.2e} < {bound}")
    return near_ties


def test_check_lossless_accepts_near_ties_only(tiny_pair):
    # the helper itself, on a made-up divergence: the runner-up token at new token 3
    target = tiny_pair[0]
    prompt = PROMPT_IDS[0]
    plain = generate_plain(target, [prompt], max_new_tokens=8).tokens[0]
    logits = recompute_logits(target, prompt + plain[:3])
    top2 = logits.topk(2)
    assert int(top2.indices[0]) == plain[3]
    gap = float(top2.values[0] - top2.values[1])
    spec = plain[:3] + [int(top2.indices[1])] + plain[4:]
    log = []
    assert check_lossless(target, [prompt], [spec], [plain], gap * 1.01, log, "made up") == 1 and len(log) == 1
    with pytest.raises(AssertionError, match="not a near-tie"):
        check_lossless(target, [prompt], [spec], [plain], gap * 0.99, log, "made up")
    with pytest.raises(AssertionError, match="same tokens but 7 vs 8"):
        check_lossless(target, [prompt], [plain[:7]], [plain], 1.0, log, "made up")


@pytest.fixture(scope="module")
def plain_fp32(tiny_pair):
    """generate_plain outputs: per prompt (batch 1) and per group (batch 3)."""
    target = tiny_pair[0]
    singles = [generate_plain(target, [p], max_new_tokens=MAX_NEW).tokens[0] for p in PROMPT_IDS]  # ~0.2 s each
    groups = [generate_plain(target, [PROMPT_IDS[i] for i in g], max_new_tokens=MAX_NEW).tokens for g in GROUPS]
    return singles, groups


def test_groups_mix_prompt_lengths():
    for g in GROUPS:
        assert len({len(PROMPT_IDS[i]) for i in g}) == 3


@pytest.mark.parametrize("k", range(1, 9))
@pytest.mark.parametrize("drafter_name", ["model", "ngram"])
def test_greedy_equals_plain(tiny_pair, plain_fp32, near_tie_log, drafter_name, k):
    target, draft = tiny_pair
    singles, groups = plain_fp32
    drafter = drafter_for(drafter_name, draft)
    accepted = 0
    for i in SINGLES_FOR_K[k]:
        prompt = PROMPT_IDS[i]
        gen = speculative_generate(target, drafter, [prompt], k=k, max_new_tokens=MAX_NEW)
        assert len(gen.tokens[0]) == MAX_NEW
        check_lossless(target, [prompt], gen.tokens, [singles[i]], FP32_BOUND, near_tie_log,
                       f"{drafter_name} k={k} prompt {i}")
        accepted += gen.stats.accepted
    for g, plain in zip(GROUPS, groups):
        prompts = [PROMPT_IDS[i] for i in g]
        gen = speculative_generate(target, drafter, prompts, k=k, max_new_tokens=MAX_NEW)
        assert [len(t) for t in gen.tokens] == [MAX_NEW] * 3
        check_lossless(target, prompts, gen.tokens, plain, FP32_BOUND, near_tie_log,
                       f"{drafter_name} k={k} batch {g}")
        accepted += gen.stats.accepted
    # the drafts were used, not just verified away (lossless would hold trivially otherwise)
    assert accepted > (3 if drafter_name == "model" else 1) * 8, f"only {accepted} drafts accepted"


EOS = ord("\n")
EOS_PROMPTS = [list(p.encode()) for p in (
    "import os\nimport sys\nimport re",  # a newline a few tokens in
    "The quick brown fox jumps over the lazy dog and ",  # prose: no newline within max_new
    "def f(x):\n    return x\n\ndef g(y):",  # a newline first: the row stops at the prefill
)]


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("drafter_name", ["model", "ngram"])
def test_eos_stops_each_row_and_the_others_continue(tiny_pair, near_tie_log, drafter_name, k):
    target, draft = tiny_pair
    max_new = 40
    plain = generate_plain(target, EOS_PROMPTS, max_new_tokens=max_new, eos_token_id=EOS).tokens
    unstopped = generate_plain(target, EOS_PROMPTS, max_new_tokens=max_new).tokens
    # plain itself: the output without EOS, cut just after its first EOS
    assert plain == [t[:t.index(EOS) + 1] if EOS in t else t for t in unstopped]
    lengths = [len(t) for t in plain]
    assert lengths[2] == 1 and 1 < lengths[0] < max_new == lengths[1], f"rows should stop at different steps: {lengths}"

    gen = speculative_generate(target, drafter_for(drafter_name, draft), EOS_PROMPTS, k=k,
                               max_new_tokens=max_new, eos_token_id=EOS)
    for t in gen.tokens:
        assert EOS not in t[:-1], "a row went on past its EOS"
        assert t[-1] == EOS or len(t) == max_new
    check_lossless(target, EOS_PROMPTS, gen.tokens, plain, FP32_BOUND, near_tie_log,
                   f"eos {drafter_name} k={k}")


@pytest.mark.parametrize("max_new", [1, 2, 3, 10])
@pytest.mark.parametrize("drafter_name", ["model", "ngram"])
def test_max_new_tokens_is_exact(tiny_pair, plain_fp32, near_tie_log, drafter_name, max_new):
    # k = 8 > max_new - 1: a step may accept more drafts than the row may still emit
    target, draft = tiny_pair
    g = GROUPS[1]
    prompts = [PROMPT_IDS[i] for i in g]
    streamed = [[] for _ in prompts]
    gen = speculative_generate(target, drafter_for(drafter_name, draft), prompts, k=8, max_new_tokens=max_new,
                               on_tokens=lambda b, ids: streamed[b].extend(ids))
    assert [len(t) for t in gen.tokens] == [max_new] * 3
    assert streamed == gen.tokens, "on_tokens must stream exactly the returned tokens"
    assert gen.stats.new_tokens == 3 * max_new
    assert gen.stats.emitted == 3 * (max_new - 1), "steps emitted tokens past max_new_tokens"
    plain = generate_plain(target, prompts, max_new_tokens=max_new).tokens
    _, plain_groups = plain_fp32
    assert plain == [t[:max_new] for t in plain_groups[1]]
    check_lossless(target, prompts, gen.tokens, plain, FP32_BOUND, near_tie_log, f"max_new={max_new} {drafter_name}")


@pytest.mark.parametrize("drafter_name", ["model", "ngram"])
def test_bfloat16_greedy_equals_bfloat16_plain(tiny_pair_bf16, near_tie_log, drafter_name):
    target, draft = tiny_pair_bf16
    drafter = drafter_for(drafter_name, draft)
    for k, g in zip((1, 3, 8), GROUPS):  # bf16 matmuls are slow on CPU: one batch of 3 per k
        prompts = [PROMPT_IDS[i] for i in g]
        plain = generate_plain(target, prompts, max_new_tokens=MAX_NEW).tokens
        gen = speculative_generate(target, drafter, prompts, k=k, max_new_tokens=MAX_NEW)
        assert [len(t) for t in gen.tokens] == [MAX_NEW] * 3
        check_lossless(target, prompts, gen.tokens, plain, BF16_BOUND, near_tie_log, f"bf16 {drafter_name} k={k} {g}")

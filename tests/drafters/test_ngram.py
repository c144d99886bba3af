import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.drafters import NgramDrafter
from tt_specdec.sampling import Sampling


def ids(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode()))


def test_copies_what_followed_the_latest_match():
    # tail "ab" occurs twice earlier; the latest is followed by "Z"
    assert bytes(NgramDrafter().lookup(ids("abX..abZ..ab"), 3).tolist()) == b"Z.."


def test_prefers_the_longest_ngram():
    # "b" alone last matched before "Q"; the 3-gram "xab" matched before "Y"
    assert bytes(NgramDrafter(max_ngram=3).lookup(ids("xabY bQ xab"), 1).tolist()) == b"Y"


def test_short_continuation_is_padded_and_no_match_repeats_last():
    d = NgramDrafter()
    assert bytes(d.lookup(ids("qrs.s"), 3).tolist()) == b".ss", "continuation '.s' padded with its last token"
    assert d.lookup(ids("abc"), 2).tolist() == [ord("c")] * 2


def test_propose_batches_rows_of_different_lengths():
    ctx = torch.zeros(2, 16, dtype=torch.long)
    ctx[0, :6], ctx[1, :3] = ids("abcabc"[:6]), ids("xyx")
    proposal = NgramDrafter().propose(ctx, torch.tensor([6, 3]), 2, Sampling(), torch.zeros(2))
    assert proposal.probs is None
    assert proposal.tokens.tolist() == [list(b"ab"), list(b"yx")]


def match_by_loop(ctx: list[int], k: int, max_ngram: int, min_ngram: int):
    """The rule token by token: the longest tail n (max_ngram .. min_ngram) with an earlier occurrence, the
    latest one; what followed it, padded with its last token."""
    L = len(ctx)
    for n in range(min(max_ngram, L - 1), min_ngram - 1, -1):
        for start in range(L - n - 1, -1, -1):
            if ctx[start:start + n] == ctx[L - n:]:
                follow = ctx[start + n:][:k]
                return follow + follow[-1:] * (k - len(follow)), len(follow), n
    return None


@settings(max_examples=300, deadline=None)
@given(ctx=st.lists(st.sampled_from([0, 1, 2, 255, 256, 65536, 2**40]), min_size=1, max_size=40),
       k=st.integers(1, 6), max_ngram=st.integers(1, 5))
def test_match_is_the_rule_token_by_token(ctx, k, max_ngram):
    """Few distinct ids (zeros and multi-byte values: a byte pattern may straddle two tokens), so matches abound."""
    found = NgramDrafter(max_ngram, 1).match(torch.tensor(ctx), k)
    expected = match_by_loop(ctx, k, max_ngram, 1)
    assert (found if found is None else (found[0].tolist(), found[1], found[2])) == expected

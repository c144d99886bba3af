import torch

from tt_specdec.drafters import NgramDrafter, Sampling


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
    drafts, probs = NgramDrafter().propose(ctx, torch.tensor([6, 3]), 2, Sampling(), torch.zeros(2))
    assert probs is None
    assert drafts.tolist() == [list(b"ab"), list(b"yx")]

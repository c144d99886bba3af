"""rollback_kv against the plain-loop reference and its invariants: positions advance by
n + 1, last = output_tokens[n], skipped rows untouched, inputs unmodified, paged blocks
starting at or after the new pos freed and reported, all others kept."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.ops import PLACEHOLDER, accept_prefix, rollback_kv
from tt_specdec.ops.rollback_kv import compact_hidden, reference


@st.composite
def rollback_cases(draw):
    B = draw(st.integers(1, 5))
    k = draw(st.integers(1, 8))
    paged = draw(st.booleans())
    block_size = draw(st.sampled_from([1, 4, 16, 32]))
    dtype = draw(st.sampled_from([torch.int64, torch.int32]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    pos = torch.randint(0, 80, (B,), generator=g)
    # pos at a block boundary and one before it: the edge of "starts at or after"
    edges = torch.tensor([0, block_size - 1, block_size, 2 * block_size - 1, 32, 31])
    pos = torch.where(torch.rand(B, generator=g) < 0.5, edges[torch.randint(0, len(edges), (B,), generator=g)], pos)
    n = torch.randint(-1, k + 1, (B,), generator=g)
    tokens = torch.randint(0, 100, (B, k + 1), generator=g)
    output = torch.where(torch.arange(k + 1).view(1, -1) <= n.view(B, 1), tokens, PLACEHOLDER)
    last = torch.randint(0, 100, (B,), generator=g)
    page_table = None
    if paged:
        # the verify step wrote KV up to pos + k: those blocks are allocated, maybe a spare one too
        max_blocks = (80 + k) // block_size + 2
        needed = (pos + k) // block_size + 1 + torch.randint(0, 2, (B,), generator=g)
        ids = torch.randperm(B * max_blocks, generator=g).view(B, max_blocks)
        page_table = torch.where(torch.arange(max_blocks).view(1, -1) < needed.view(B, 1), ids, -1).to(dtype)
    return pos.to(dtype), last.to(dtype), n, output, page_table, block_size if paged else None


@settings(deadline=None, max_examples=60)
@given(rollback_cases())
def test_matches_reference_and_invariants(case):
    pos, last, n, output, page_table, block_size = case
    inputs = [t.clone() for t in (pos, last, n, output)] + ([page_table.clone()] if page_table is not None else [])
    result = rollback_kv(pos, last, n, output, page_table=page_table, block_size=block_size)
    expected = reference.rollback_kv(pos, last, n, output, page_table=page_table, block_size=block_size)
    after = [pos, last, n, output] + ([page_table] if page_table is not None else [])
    assert all(torch.equal(a, b) for a, b in zip(inputs, after)), "inputs were modified"
    for got, want in zip(result, expected):
        assert (got is None) == (want is None)
        if got is not None:
            assert got.dtype == want.dtype and torch.equal(got, want)
    live = n >= 0
    assert torch.equal(result.pos[live], pos[live] + n[live] + 1)
    assert torch.equal(result.last[live], output[live, n[live]].to(last.dtype))
    assert torch.equal(result.pos[~live], pos[~live]) and torch.equal(result.last[~live], last[~live])
    if page_table is None:
        assert result.page_table is None and result.freed is None
        return
    assert result.page_table.dtype == page_table.dtype
    starts = torch.arange(page_table.shape[1]) * block_size
    for b in range(pos.shape[0]):
        # a block is freed iff the row is live, the entry is allocated and it starts at/after the new pos
        stale = bool(live[b]) & (starts >= int(result.pos[b])) & (page_table[b] >= 0)
        assert torch.equal(result.freed[b], torch.where(stale, page_table[b], -1))
        assert torch.equal(result.page_table[b], torch.where(stale, -1, page_table[b]))
        # the new pos - 1 (newest cached token) stays in an allocated block
        if bool(live[b]):
            assert int(result.page_table[b, (int(result.pos[b]) - 1) // block_size]) >= 0


def test_after_accept_prefix():
    tokens = torch.tensor([[3, 1, 4, 1], [2, 7, 1, 8], [5, 5, 5, 5]])
    logits = torch.nn.functional.one_hot(tokens, 10).float()
    n, out = accept_prefix(logits, torch.tensor([[3, 1, 4], [2, 0, 1], [5, 5, 5]]), num_draft=torch.tensor([3, 3, -1]))
    pos, last = torch.tensor([15, 30, 9]), torch.tensor([0, 0, 6])
    page_table = torch.tensor([[4, 9, -1], [2, 7, 3], [5, 6, -1]])
    r = rollback_kv(pos, last, n, out, page_table=page_table, block_size=16)
    assert r.pos.tolist() == [19, 32, 9]  # n = 3, 1, skipped
    assert r.last.tolist() == [1, 7, 6]
    assert r.page_table.tolist() == [[4, 9, -1], [2, 7, -1], [5, 6, -1]]  # block 2 of row 1 starts at 32
    assert r.freed.tolist() == [[-1, -1, -1], [-1, -1, 3], [-1, -1, -1]]


def test_empty_batch():
    empty = torch.zeros(0, dtype=torch.int64)
    r = rollback_kv(empty, empty, empty, torch.zeros(0, 4, dtype=torch.int64),
                    page_table=torch.zeros(0, 3, dtype=torch.int64), block_size=16)
    assert r.pos.shape == (0,) and r.freed.shape == (0, 3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_accepted=torch.tensor([4, 0])), "num_accepted"),
    (dict(num_accepted=torch.tensor([-2, 0])), "num_accepted"),
    (dict(num_accepted=torch.tensor([0])), "num_accepted"),
    (dict(last=torch.tensor([1, 2, 3])), "last"),
    (dict(output_tokens=torch.tensor([[1, -1, -1, -1], [1, -1, -1, -1]]), num_accepted=torch.tensor([0, 1])),
     "output_tokens"),
    (dict(page_table=torch.zeros(2, 3, dtype=torch.int64)), "block_size"),
    (dict(page_table=torch.zeros(3, 3, dtype=torch.int64), block_size=16), "page_table"),
])
def test_bad_inputs_name_the_argument(kwargs, match):
    args = dict(pos=torch.tensor([3, 4]), last=torch.tensor([1, 2]), num_accepted=torch.tensor([1, 0]),
                output_tokens=torch.tensor([[1, 2, -1, -1], [5, -1, -1, -1]]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rollback_kv(args.pop("pos"), args.pop("last"), args.pop("num_accepted"), args.pop("output_tokens"), **args)


# ---- compaction: accepted KV rows copied from pos + accepted_slots[j] to pos + j ----------------

def clone_step(step: dict) -> dict:
    return {name: x.clone() if isinstance(x, torch.Tensor) else x for name, x in step.items()}


def slot_location(step: dict, b: int, slot: int) -> tuple[int, int]:
    """(sequence or block, row) of slot `slot` of sequence b in the step's caches."""
    if step.get("page_table") is None:
        return b, slot
    return int(step["page_table"][b, slot // step["block_size"]]), slot % step["block_size"]


def written_slots(step: dict) -> list[tuple[int, int]]:
    """Locations of every slot pos + j, j <= n, of the live rows: all a step may write."""
    return [slot_location(step, b, int(step["pos"][b]) + j)
            for b, n in enumerate(step["num_accepted"].tolist()) for j in range(n + 1)]


def assert_compacted_like_reference(step: dict, got: dict) -> None:
    """`got` is `step` after rollback_kv: its caches equal the reference's, and every slot the
    step may not write (finished rows, j > n, other positions) holds what it held before."""
    want = clone_step(step)
    reference.rollback_kv(**want)
    for name in ("k_cache", "v_cache"):
        assert torch.equal(got[name], want[name]), f"{name} differs from the reference"
        before, after = step[name], got[name]
        keep = torch.ones(before.shape[-4], before.shape[-2], dtype=torch.bool)  # [B or blocks, S or block_size]
        for m, r in written_slots(step):
            keep[m, r] = False
        lead = [slice(None)] * (before.dim() - 4)
        idx = (*lead, keep.nonzero()[:, 0], slice(None), keep.nonzero()[:, 1])
        assert torch.equal(after[idx], before[idx]), f"{name}: a slot outside pos..pos+n of a live row changed"


@settings(deadline=None, max_examples=60)
@given(B=st.integers(1, 8), k=st.integers(1, 15), block_size=st.sampled_from([None, 4, 16, 32, 64]),
       layers=st.sampled_from([None, 1, 3]), dtype=st.sampled_from([torch.bfloat16, torch.float32]),
       seed=st.integers(0, 2**31 - 1))
def test_compaction_matches_reference(B, k, block_size, layers, dtype, seed):
    step = reference.random_rollback_step(seed, B, k, block_size=block_size, layers=layers, dtype=dtype)
    got = clone_step(step)
    result = rollback_kv(**got)
    assert torch.equal(result.pos, reference.rollback_kv(**clone_step(step)).pos)
    assert_compacted_like_reference(step, got)


def test_chain_slots_move_nothing():
    step = reference.random_rollback_step(3, 4, 6, block_size=16)
    step["accepted_slots"] = torch.arange(7).repeat(4, 1)
    got = clone_step(step)
    rollback_kv(**got)
    assert torch.equal(got["k_cache"], step["k_cache"]) and torch.equal(got["v_cache"], step["v_cache"])


@pytest.mark.parametrize("block_size", [None, 16])
def test_overlapping_slots_copy_values_from_before_the_call(block_size):
    """A swap (slot 1 <- 2, slot 2 <- 1) and a shift (j <- j + 1) overlap sources and destinations:
    each destination gets the source's value from before the call, not one already overwritten."""
    step = reference.random_rollback_step(5, 2, 4, block_size=block_size, layers=2)
    step["num_accepted"] = torch.tensor([3, 3])
    step["output_tokens"] = torch.tensor([[1, 2, 3, 4, -1], [1, 2, 3, 4, -1]])
    step["accepted_slots"] = torch.tensor([[0, 2, 1, 3, -1], [1, 2, 3, 4, -1]])
    got = clone_step(step)
    rollback_kv(**got)
    assert_compacted_like_reference(step, got)
    for b, row in enumerate(step["accepted_slots"].tolist()):
        p = int(step["pos"][b])
        for j in range(4):
            (ms, rs), (md, rd) = slot_location(step, b, p + row[j]), slot_location(step, b, p + j)
            for name in ("k_cache", "v_cache"):
                assert torch.equal(got[name][:, md, :, rd], step[name][:, ms, :, rs])


def compaction_args(**change) -> dict:
    step = reference.random_rollback_step(11, 2, 3, block_size=change.pop("paged", None), layers=2)
    step["num_accepted"] = torch.tensor([2, 3])
    step["output_tokens"] = torch.tensor([[1, 2, 3, -1], [1, 2, 3, 4]])
    step["accepted_slots"] = torch.tensor([[0, 2, 3, -1], [0, 1, 3, 2]])
    step.update(change)
    return step


@pytest.mark.parametrize("change,match", [
    (dict(k_cache=None), "k_cache: got None"),
    (dict(accepted_slots=None), "accepted_slots: got None"),
    (dict(accepted_slots=torch.tensor([[0, 2, 3, -1]])), r"accepted_slots: got shape \[1, 4\]"),
    (dict(accepted_slots=torch.tensor([[0, 2, 4, -1], [0, 1, 3, 2]])), r"accepted_slots: got 4 at \[0, 2\]"),
    (dict(accepted_slots=torch.tensor([[0, 2, 3, -1], [0, -1, 3, 2]])), r"accepted_slots: got -1 at \[1, 1\]"),
    (dict(accepted_slots=torch.tensor([[0., 2, 3, -1], [0, 1, 3, 2]])), "accepted_slots: got dtype torch.float32"),
    (dict(v_cache=torch.zeros(2, 2, 2, 8, 32)), r"v_cache: got shape \[2, 2, 2, 8, 32\]"),
    (dict(k_cache=torch.zeros(2, 3, 2, 80, 32), v_cache=torch.zeros(2, 3, 2, 80, 32)), "k_cache: got 3 sequences"),
    (dict(pos=torch.tensor([0, 10_000])), "pos: got 10000 at row 1"),
    (dict(paged=16, block_size=32), "block_size: got 32, expected the caches' block size 16"),
    (dict(paged=16, page_table=torch.tensor([[0, 1, -1, -1, -1, -1], [2, 3, 4, 5, 6, 7]]), pos=torch.tensor([31, 8])),
     r"page_table: got block -1 at \[0, 2\]"),
    (dict(paged=16, page_table=torch.tensor([[0, 1, 2, -1, -1, -1], [5, 6, 2, 7, -1, -1]]), pos=torch.tensor([31, 31])),
     "page_table: got block 2 shared by rows"),
])
def test_bad_compaction_inputs_name_the_argument_and_leave_caches_untouched(change, match):
    step = compaction_args(**change)
    before = clone_step(step)
    with pytest.raises((ValueError, TypeError), match=match):
        rollback_kv(**step)
    for name, x in before.items():
        if isinstance(x, torch.Tensor):
            assert torch.equal(step[name], x), f"{name} changed by a rejected call"


@settings(deadline=None, max_examples=40)
@given(B=st.integers(1, 8), k=st.integers(1, 15), width=st.sampled_from([1, 24]), seed=st.integers(0, 2**31 - 1))
def test_compact_hidden_moves_the_rows_the_kv_moves(B, k, width, seed):
    """A tree's kept hidden states [B, S, W] are compacted as the reference compacts a cache of one head."""
    step = reference.random_rollback_step(seed, B, k, layers=None)
    hidden = torch.randn(B, step["k_cache"].shape[-2], width, generator=torch.Generator().manual_seed(seed))
    want = clone_step(step)
    want["k_cache"], want["v_cache"] = hidden.unsqueeze(1).clone(), hidden.unsqueeze(1).clone()  # [B, 1, S, W]
    reference.rollback_kv(**want)
    got = hidden.clone()
    compact_hidden(step["pos"], step["num_accepted"], step["accepted_slots"], got)
    assert torch.equal(got, want["k_cache"][:, 0])


@pytest.mark.parametrize("change,match", [
    (dict(hidden_cache=torch.zeros(2, 80)), r"hidden_cache: got shape \[2, 80\], expected \[B, S, W\] with B=2"),
    (dict(hidden_cache=torch.zeros(3, 80, 8)), r"hidden_cache: got shape \[3, 80, 8\], expected \[B, S, W\] with B=2"),
    (dict(accepted_slots=torch.tensor([[0, 2, 4, -1], [0, 1, 3, 2]])), r"accepted_slots: got 4 at \[0, 2\]"),
    (dict(pos=torch.tensor([0, 78])), "pos: got 78 at row 1"),
])
def test_bad_compact_hidden_inputs_name_the_argument_and_leave_it_untouched(change, match):
    step = compaction_args()
    args = dict(pos=step["pos"], num_accepted=step["num_accepted"], accepted_slots=step["accepted_slots"],
                hidden_cache=torch.randn(2, 80, 8))
    args.update(change)
    before = args["hidden_cache"].clone()
    with pytest.raises(ValueError, match=match):
        compact_hidden(**args)
    assert torch.equal(args["hidden_cache"], before)

"""ops.<op>(..., backend="emu") runs the kernels: same results as the reference, arguments
validated by the op before anything is dispatched, unknown backends named."""
import pytest
import torch

from tt_specdec import ops
from tt_specdec.ops.rollback_kv.reference import rollback_kv as rollback_kv_reference
from tt_specdec.ops.verify_attention.reference import verify_attention as verify_attention_reference
from tt_specdec.runtime import emu


@pytest.fixture
def runs(monkeypatch):
    """Counts emu.run calls: the kernels did run (or did not)."""
    calls = []
    real = emu.run
    monkeypatch.setattr(emu, "run", lambda prog, *a, **kw: calls.append(prog.name) or real(prog, *a, **kw))
    return calls


def test_rollback_kv_emu_matches_reference_paged(runs):
    pos, last = torch.tensor([30, 7, 64]), torch.tensor([5, 9, 1])
    n = torch.tensor([2, -1, 0])
    out = torch.tensor([[4, 6, 8, -1], [-1, -1, -1, -1], [3, -1, -1, -1]])
    table = torch.tensor([[0, 1, 2, -1, -1], [3, -1, -1, -1, -1], [4, 5, 6, 7, -1]])
    got = ops.rollback_kv(pos, last, n, out, page_table=table, block_size=16, backend="emu")
    want = rollback_kv_reference(pos, last, n, out, page_table=table, block_size=16)
    assert runs == ["rollback_kv"]
    for g, w in zip(got, want):
        assert torch.equal(g, w), (g, w)


def test_rollback_kv_emu_validates_before_dispatch(runs):
    with pytest.raises(ValueError, match=r"output_tokens: got -1 at \[0, 1\] \(index num_accepted"):
        ops.rollback_kv(torch.tensor([3]), torch.tensor([1]), torch.tensor([1]), torch.tensor([[4, -1, -1]]),
                        backend="emu")
    with pytest.raises(ValueError, match="num_accepted: got"):
        ops.rollback_kv(torch.tensor([3]), torch.tensor([1]), torch.tensor([5]), torch.tensor([[4, 2, 1]]),
                        backend="emu")
    assert runs == []
    with pytest.raises(ValueError, match="backend: got 'cuda'"):
        ops.rollback_kv(torch.tensor([3]), torch.tensor([1]), torch.tensor([0]), torch.tensor([[4, 2]]),
                        backend="cuda")


@pytest.mark.parametrize("T", [3, 19])  # 19 rows with group 4: three row blocks of 8, 8 and 3
def test_verify_attention_emu_matches_reference(T, runs):
    g = torch.Generator().manual_seed(T)
    B, Hq, Hkv, S, D = 2, 8, 2, 96, 32
    q = torch.randn(B, T, Hq, D, generator=g)
    k, v = torch.randn(B, Hkv, S, D, generator=g), torch.randn(B, Hkv, S, D, generator=g)
    pos = torch.tensor([0, 40])
    out = ops.verify_attention(q, k, v, pos, backend="emu")
    assert runs == ["verify_attention"] * -(-T // 8)
    ref = verify_attention_reference(q, k, v, pos).double()
    # TF32 sources of the matrix unit: the tolerance a card meets (tests/emu/test_emu_verify_attention.py)
    err = (out.double() - ref).abs()
    assert bool((err <= 2**-8 * (1 + ref.abs())).all()), err.max()


def test_verify_attention_emu_validates_and_names_what_is_unsupported():
    q, k, v = torch.randn(1, 2, 4, 16), torch.randn(1, 2, 64, 16), torch.randn(1, 2, 64, 16)
    with pytest.raises(ValueError, match=r"pos: got \[63\] with T=2"):
        ops.verify_attention(q, k, v, torch.tensor([63]), backend="emu")
    with pytest.raises(NotImplementedError, match=r"D a multiple of 32 \(got 16\)"):
        ops.verify_attention(q, k, v, torch.tensor([3]), backend="emu")
    with pytest.raises(ValueError, match="backend: got 'gpu'"):
        ops.verify_attention(q, k, v, torch.tensor([3]), backend="gpu")

"""The contract the device step (speculative/device_step.py) builds on, checked with the torch ops on the host:
rollback_kv with n - 1 gives the draft's next start, (pos + n, the token before `last`), including n = 0, where
the row is skipped and keeps (pos, last); with n it gives (pos + n + 1, output[n]). The draft then re-runs
[prev, last] at pos + n: exactly the two tokens whose KV the draft may lack."""
import torch

from tt_specdec.ops import rollback_kv


def test_rollback_with_n_minus_1_gives_the_drafts_next_start():
    k = 4
    pos, last = torch.tensor([10, 20, 30, 40, 50]), torch.tensor([7, 7, 7, 7, 7])
    n = torch.tensor([0, 1, 2, 3, 4])
    out = torch.full((5, k + 1), -1)
    for b in range(5):
        out[b, :int(n[b]) + 1] = torch.arange(100 * b, 100 * b + int(n[b]) + 1)
    after = rollback_kv(pos, last, n, out)
    before = rollback_kv(pos, last, n - 1, out)
    assert torch.equal(after.pos, pos + n + 1) and torch.equal(after.last, out[torch.arange(5), n])
    assert torch.equal(before.pos, pos + n) and torch.equal(before.pos, after.pos - 1)
    prev = torch.where(n > 0, out[torch.arange(5), (n - 1).clamp(min=0)], last)
    assert torch.equal(before.last, prev)

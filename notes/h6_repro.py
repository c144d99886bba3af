import sys, torch
sys.path.insert(0, "tests/emu")
from programs import tiles_program
from tt_specdec.runtime import emu
from tt_specdec import ops
which = sys.argv[1]
g = torch.Generator().manual_seed(0)
if which == "va":
    B, T, Hq, Hkv, S, D = 2, 3, 9, 3, 64, 64
    q = torch.randn(B, T, Hq, D); k = torch.randn(B, Hkv, S, D); v = torch.randn(B, Hkv, S, D)
    ops.verify_attention(q, k, v, torch.tensor([5, 9]), backend="emu")
elif which == "ap":
    logits = torch.randn(2, 3, 300); d = torch.randint(0, 300, (2, 2))
    ops.accept_prefix(logits, d, backend="emu")
elif which == "rb":
    pass
a = torch.randn(96, 32, generator=g).to(torch.bfloat16)
b = (torch.rand(96, 32, generator=g) + 0.5).to(torch.bfloat16)
for i in range(3):
    emu.run(tiles_program(3, a.dtype, op=0), {"a": a, "b": b})
print("ok", which)

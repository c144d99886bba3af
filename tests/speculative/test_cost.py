"""The cost model (S = E (1 + o0) / (d0 + k·c + v(k+1) + o)), the adaptive-k policy, and the loop driven by it."""
import math
import time

import numpy as np
import pytest
import torch

from tt_specdec.drafters import ModelDrafter, NgramDrafter
from tt_specdec.sampling import Sampling
from tt_specdec.speculative import measure as cost_mod
from tt_specdec.speculative import generate_plain, speculative_generate
from tt_specdec.speculative.policy import AdaptiveK
from tt_specdec.speculative.cost import CostModel, expected_tokens
from tt_specdec.speculative.measure import measure

FREE_DRAFTS = CostModel(c=0.0, d0=0.0, v=(1.0,) * 9)  # drafting and verifying cost nothing extra
DEAR_DRAFTS = CostModel(c=2.0, d0=0.0, v=(1.0,) * 9)  # a draft step costs two target steps


def test_expected_tokens_formula():
    assert expected_tokens(0.0, 5) == 1.0
    assert expected_tokens(1.0, 5) == 6.0
    assert math.isclose(expected_tokens(0.5, 2), 1 + 0.5 + 0.25)


def test_speedup_matches_design_formula():
    cm = CostModel(c=0.1, d0=0.05, v=(1.0, 1.1, 1.2, 1.3, 1.4))
    a, k = 0.7, 3
    assert math.isclose(cm.speedup(a, k), (1 - a ** 4) / (1 - a) / (0.05 + 3 * 0.1 + 1.3))
    assert cm.speedup(a, 0) == 1.0


def test_best_k_extremes():
    assert FREE_DRAFTS.best_k(0.5) == 8, "free drafts: always the longest"
    assert DEAR_DRAFTS.best_k(0.9) == 0, "drafting never pays: plain decoding"
    cm = CostModel(c=0.05, d0=0.0, v=(1.0, 1.11, 1.11, 1.16, 1.22, 1.32, 1.35, 1.39, 1.45))
    ks = [cm.best_k(a) for a in (0.1, 0.5, 0.7, 0.9)]
    assert ks == sorted(ks) and ks[0] <= 1 and ks[-1] >= 4, f"k grows with acceptance: {ks}"


def test_adaptive_k_follows_acceptance_and_probes():
    cm = CostModel(c=0.1, d0=0.0, v=(1.0, 1.1, 1.15, 1.2, 1.25))
    pol = AdaptiveK(cm, 4, probe_every=3)
    pol.reset(2)
    for _ in range(20):  # row 0 accepts everything offered, row 1 nothing
        k = pol.choose()
        pol.update(k, np.array([k[0], 0]))
    a = pol.acceptance()
    assert a[0] > 0.9 and a[1] < 0.2
    assert pol.choose()[0] == 4
    seen = []
    for _ in range(6):  # row 1 sits at plain decoding, with a one-draft probe every 3rd step
        k = pol.choose()
        seen.append(int(k[1]))
        pol.update(k, np.zeros(2, dtype=np.int64))
    assert 0 in seen and 1 in seen and seen.count(1) <= 2


def test_measure_reports_ratios(tiny_pair):
    target, draft = tiny_pair
    cm = measure(target, ModelDrafter(draft), k_max=3, repeats=2)
    assert cm.v[0] == 1.0 and len(cm.v) == 4 and all(x > 0 for x in cm.v)
    assert list(cm.v) == sorted(cm.v), "v is non-decreasing: a dip is timing noise"
    assert cm.c >= 0 and cm.d0 >= 0 and cm.k_max == 3
    assert cm.o > 0 and cm.o0 > 0 and cm.o_plain > 0, "a step of either loop does some work of its own"
    assert "forward" not in vars(target), "measure puts the target's own forward back"


def test_loop_overhead_sees_the_loops_own_work(tiny_pair, monkeypatch):
    """5 ms more per step of the speculative loop (not in the forward or the proposal) shows up in o and
    o_plain, not in plain decoding's o0."""
    import tt_specdec.speculative.loop as loop

    target, draft = tiny_pair
    drafter = ModelDrafter(draft)
    o, o0, o_plain = cost_mod.loop_overhead(target, drafter, 1, 16, steps=6, repeats=2)
    real = loop.rollback_kv

    def slow(*args, **kwargs):
        time.sleep(0.005)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "rollback_kv", slow)
    slow_o, slow_o0, slow_plain = cost_mod.loop_overhead(target, drafter, 1, 16, steps=6, repeats=2)
    assert slow_o - o >= 0.004 and slow_plain - o_plain >= 0.004, "every step of the loop rolls back"
    assert slow_o0 < o0 + 0.004, "plain decoding does not"
    assert "propose" not in vars(drafter) and "forward" not in vars(target)


def test_loop_overhead_leaves_a_trees_verify_out(tiny_pair, monkeypatch):
    """A tree drafter's steps verify with forward_tree: 5 ms more there is the forward's time, not the loop's."""
    from tt_specdec.drafters import TreeDrafter

    target, draft = tiny_pair
    drafter = TreeDrafter(draft, lookup=True)
    o, _, _ = cost_mod.loop_overhead(target, drafter, 1, 16, steps=6, repeats=2)
    real = type(target).forward_tree

    def slow(self, *args, **kwargs):
        time.sleep(0.005)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(target), "forward_tree", slow)
    slow_o, _, _ = cost_mod.loop_overhead(target, drafter, 1, 16, steps=6, repeats=2)
    assert slow_o < o + 0.004, "the tree verify is timed as the target's forward"
    assert "forward_tree" not in vars(target) and "propose" not in vars(drafter)


def test_measure_times_the_loops_work_on_the_targets_own_text(tiny_pair, monkeypatch):
    """The loops whose work gives o, o0, o_plain run on the target's own greedy text (peaked next-token
    distributions, as in a real run; top-p's work grows with the nucleus), not on random tokens."""
    target, draft = tiny_pair
    seen = {}
    real = cost_mod.loop_overhead

    def capturing(*args, prompts=None, **kwargs):
        seen["prompts"] = prompts
        return real(*args, prompts=prompts, **kwargs)

    monkeypatch.setattr(cost_mod, "loop_overhead", capturing)
    measure(target, ModelDrafter(draft), k_max=2, repeats=1, context=40)
    prompts = seen["prompts"]
    assert len(prompts) == 1 and len(prompts[0]) == 40
    greedy = generate_plain(target, [prompts[0][:16]], max_new_tokens=24).tokens[0]
    assert prompts[0][16:] == greedy


def test_loop_overhead_samples_as_the_run_will(tiny_pair, monkeypatch):
    """With a sampling setting, the loops timed for o, o0 and o_plain sample (their per-row work is part
    of what a step costs); greedy ones do not."""
    import tt_specdec.sampling as sampling_mod

    target, draft = tiny_pair
    calls = []
    real = sampling_mod.process_logits
    monkeypatch.setattr(sampling_mod, "process_logits", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    cost_mod.loop_overhead(target, ModelDrafter(draft), 1, 16, steps=4, repeats=1)
    assert not calls
    cost_mod.loop_overhead(target, ModelDrafter(draft), 1, 16, steps=4, repeats=1,
                           sampling=Sampling(temperature=0.8, top_p=0.9))
    assert calls


def test_the_loops_own_work_enters_s():
    cm = CostModel(c=0.1, d0=0.05, v=(1.0, 1.1, 1.2), o=0.1, o0=0.04, o_plain=0.06)
    assert cm.step_cost(0) == pytest.approx(1.06) and cm.step_cost(2) == pytest.approx(0.05 + 0.2 + 1.2 + 0.1)
    assert cm.speedup(0.5, 2) == pytest.approx(1.75 * 1.04 / 1.55)
    assert cm.speedup(0.0, 0) < 1, "a plain step of the speculative loop is slower than plain decoding"


def test_measured_is_cached(tiny_pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TT_SPECDEC_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(cost_mod, "measure", lambda *a, **kw: calls.append(1) or FREE_DRAFTS)
    target, draft = tiny_pair
    assert cost_mod.measured(target, ModelDrafter(draft)) == FREE_DRAFTS
    assert "measuring the cost model of ModelDrafter" in capsys.readouterr().err  # the wait is announced
    assert cost_mod.measured(target, ModelDrafter(draft)) == FREE_DRAFTS
    assert capsys.readouterr().err == "", "a cached model is read silently"
    assert len(calls) == 1 and (tmp_path / "cost_models.json").exists()
    cost_mod.measured(target, NgramDrafter())
    assert len(calls) == 2, "another drafter is another measurement"
    sampled = Sampling(temperature=0.8, top_p=0.9)  # sampling's work per row is part of the costs
    cost_mod.measured(target, NgramDrafter(), sampling=sampled)
    cost_mod.measured(target, NgramDrafter(), sampling=Sampling(temperature=0.5, top_p=0.95))
    assert len(calls) == 3, "sampling is another measurement, the same for other values of the same filters"


class ScriptedK:
    """A policy replaying per-step k rows, 0 (a plain step) included, and per-step trims of the drafts
    made (as a confident-enough drafter's would be): at most trims[step] drafts per row verified."""

    def __init__(self, script, trims=None):
        self.script, self.trims, self.updates = script, trims, 0

    def reset(self, batch_size):
        self.step = 0

    def choose(self):
        ks = np.array(self.script[self.step % len(self.script)])
        self.step += 1
        return ks

    def trim(self, num_draft, confidence, source=None):
        if self.trims is None:
            return num_draft
        cap = np.array(self.trims[(self.step - 1) % len(self.trims)])
        return np.where(num_draft > 0, np.minimum(num_draft, cap), num_draft)

    def update(self, num_draft, num_accepted, confidence=None, source=None):
        self.updates += 1


@pytest.mark.parametrize("drafter", ["model", "ngram"])
def test_mixed_and_zero_k_steps_stay_lossless(tiny_pair, drafter):
    target, draft = tiny_pair
    prompts = [list(b"def area(r):\n    return"), list(b"import sys\n"), list(b"    for i in range(n):\n")]
    expected = generate_plain(target, prompts, max_new_tokens=40).tokens
    script = [[0, 0, 0], [3, 0, 1], [0, 5, 2], [1, 1, 1], [6, 6, 0]]
    pol = ScriptedK(script)
    d = ModelDrafter(draft) if drafter == "model" else NgramDrafter()
    gen = speculative_generate(target, d, prompts, k=6, max_new_tokens=40, policy=pol)
    assert gen.tokens == expected
    assert pol.updates == gen.stats.steps


@pytest.mark.parametrize("drafter", ["model", "ngram"])
def test_trimmed_steps_stay_lossless_and_count_what_was_drafted(tiny_pair, drafter):
    """Rows verify fewer drafts than were made (down to none: a plain step after drafting)."""
    target, draft = tiny_pair
    prompts = [list(b"def area(r):\n    return"), list(b"import sys\n"), list(b"    for i in range(n):\n")]
    expected = generate_plain(target, prompts, max_new_tokens=40).tokens
    pol = ScriptedK([[4, 4, 4], [2, 0, 3]], trims=[[0, 0, 0], [1, 4, 2], [4, 2, 0]])
    d = ModelDrafter(draft) if drafter == "model" else NgramDrafter()
    gen = speculative_generate(target, d, prompts, k=4, max_new_tokens=40, policy=pol)
    assert gen.tokens == expected
    # batch 3: proposals and draft-model steps count steps; drafted counts each row's verified drafts
    assert gen.stats.drafted > 0 and gen.stats.proposed >= gen.stats.proposals > 0
    assert gen.stats.proposed * 3 > gen.stats.drafted, "some drafts made were not verified"


def confident(p: float, B: int = 1, k: int = 4) -> torch.Tensor:
    return torch.full((B, k), p)


def test_trim_keeps_drafts_worth_their_verify_rows():
    cm = CostModel(c=0.05, d0=0.0, v=(1.0, 1.3, 1.6, 1.9, 2.2))  # a steep verify cost, as on a CPU
    pol = AdaptiveK(cm, 4, prior_weight=1e6)  # the confidence is taken at its word (the table's prior)
    pol.reset(3)
    nd = torch.tensor([4, 4, -1])
    conf = torch.stack([confident(0.98)[0], confident(0.05)[0], confident(0.98)[0]])
    assert pol.trim(nd, conf).tolist() == [4, 0, -1]  # sure drafts all verified; hopeless ones not at all
    mixed = torch.tensor([[0.95, 0.95, 0.15, 0.95]])
    assert pol.trim(torch.tensor([4]), mixed).tolist() == [2], "after a doubtful draft, the rest are unlikely"
    assert pol.trim(torch.tensor([4]), torch.full((1, 4), float("nan"))).tolist() == [4], "NaN: no confidence"
    assert pol.trim(nd, None) is nd


def test_trim_charges_verifying_nothing_as_a_plain_step():
    """j = 0 costs a plain step (1 + o_plain), not v(1) + o: with the loop's work in verifying steps dear,
    a doubtful single draft is not worth verifying."""
    cm = CostModel(c=0.0, d0=0.0, v=(1.0, 1.13), o=0.3, o_plain=0.0)
    pol = AdaptiveK(cm, 1, prior_weight=1e6)
    pol.reset(1)
    # (1 + 0.35) / (1.13 + 0.3) = 0.94 < 1 / (1 + 0): plain; charged v(1) + o it would be 1 / 1.3 = 0.77: verify
    assert pol.trim(torch.tensor([1]), torch.tensor([[0.35]])).tolist() == [0]
    assert pol.trim(torch.tensor([1]), torch.tensor([[0.55]])).tolist() == [1]


def trim_by_loop(pol: AdaptiveK, num_draft, confidence, source):
    """trim's rule row by row: the prefix j <= n with the best (1 + sum of reach) / (spent + the step after drafting:
    v(j+1) + o, or a plain step's 1 + o_plain for j = 0), ties to the longer."""
    reach = torch.cumprod(torch.from_numpy(pol.calibrated(confidence.nan_to_num(1.0), source)), 1)
    spent = pol.cost.d0 + confidence.shape[1] * pol.cost.c
    out = []
    for b, n in enumerate(num_draft.tolist()):
        if n <= 0 or bool(confidence[b, :n].isnan().any()):
            out.append(n)
            continue
        after = [1.0 + pol.cost.o_plain] + [pol.cost.v[j] + pol.cost.o for j in range(1, n + 1)]
        rate = [(1.0 + float(reach[b, :j].sum())) / (spent + after[j]) for j in range(n + 1)]
        out.append(max(range(n + 1), key=lambda j: (rate[j], j)))
    return out


def test_trim_matches_its_rule_row_by_row():
    g = torch.Generator().manual_seed(0)
    cm = CostModel(c=0.06, d0=0.07, v=(1.0, 1.13, 1.2, 1.3, 1.52, 1.72, 2.1, 2.3, 2.64), o=0.12, o_plain=0.05)
    pol = AdaptiveK(cm, 8)
    pol.reset(6)
    for step in range(300):
        B, k = 6, int(torch.randint(1, 9, (1,), generator=g))
        conf = torch.rand(B, k, generator=g) ** 0.5
        conf[torch.rand(B, k, generator=g) < 0.05] = float("nan")
        conf[torch.rand(B, k, generator=g) < 0.05] = 0.0  # not a draft (a copy past its continuation)
        nd = torch.randint(-1, k + 1, (B,), generator=g)
        source = torch.randint(0, 2, (B,), generator=g)
        assert pol.trim(nd, conf, source).tolist() == trim_by_loop(pol, nd, conf, source), step
        pol.update(nd, torch.minimum(nd, torch.randint(-1, k + 1, (B,), generator=g)), conf, source)


def test_confidence_table_learns_overconfidence():
    cm = CostModel(c=0.05, d0=0.0, v=(1.0, 1.3, 1.6, 1.9, 2.2))
    pol = AdaptiveK(cm, 4)
    pol.reset(1)
    conf = confident(0.95)
    assert pol.trim(torch.tensor([4]), conf).tolist() == [4]
    for _ in range(40):  # drafts claiming 0.95 are always rejected at once
        pol.update(torch.tensor([4]), torch.tensor([0]), conf)
    assert float(pol.calibrated(torch.tensor([[0.95]]))[0, 0]) < 0.2
    assert pol.trim(torch.tensor([4]), conf).tolist() == [0]
    assert float(pol.calibrated(torch.tensor([[0.55]]))[0, 0]) == pytest.approx(0.55), "other bins untouched"
    copied = torch.tensor([1])  # another source (copies) keeps its own table
    assert float(pol.calibrated(torch.tensor([[0.95]]), copied)[0, 0]) == pytest.approx(0.95)
    assert pol.trim(torch.tensor([4]), conf, copied).tolist() == [4]
    for _ in range(40):  # copies at 0.95 are right: their table says so, the other one is untouched
        pol.update(torch.tensor([4]), torch.tensor([4]), conf, copied)
    assert float(pol.calibrated(torch.tensor([[0.95]]), copied)[0, 0]) > 0.95
    assert float(pol.calibrated(torch.tensor([[0.95]]))[0, 0]) < 0.2
    assert pol.calibrated(torch.tensor([[0.95, 0.0]]), copied)[0, 1] == 0, "confidence 0: not a draft"


def test_auto_policy_is_lossless(tiny_pair):
    target, draft = tiny_pair
    prompts = [list(b"class Queue:\n    def __init__(self):\n")]
    expected = generate_plain(target, prompts, max_new_tokens=48).tokens
    pol = AdaptiveK(CostModel(c=0.2, d0=0.05, v=(1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)), 6)
    gen = speculative_generate(target, ModelDrafter(draft), prompts, k=6, max_new_tokens=48, policy=pol)
    assert gen.tokens == expected


def test_cached_cost_models_tell_drafters_apart(tiny_pair):
    """A lookup-first drafter costs what its fallback costs: two fallbacks, two cache entries."""
    from tt_specdec.drafters import EagleDrafter, EagleHead, LookupFirstDrafter, TreeDrafter
    from tt_specdec.models import load_tiny_pair

    target, draft = tiny_pair
    own_target = load_tiny_pair()[0]
    eagle = EagleDrafter(own_target, EagleHead.for_target(own_target))
    idents = [cost_mod.describe_drafter(d) for d in (ModelDrafter(draft), LookupFirstDrafter(ModelDrafter(draft)),
                                                     LookupFirstDrafter(eagle), eagle,
                                                     EagleDrafter(own_target, eagle.head.with_vocabulary(torch.arange(9))),
                                                     TreeDrafter(draft), TreeDrafter(draft, lookup=True),
                                                     TreeDrafter(draft, top_children=2))]
    assert len({repr(i) for i in idents}) == len(idents)


def test_cached_cost_models_tell_the_decoders_paths_apart():
    """A CpuLlama on its engine and on the per-layer path cost differently: two cache entries."""
    from tt_specdec.models import load_tiny_pair
    from tt_specdec.models.cpu_llama import CpuLlama

    target = CpuLlama(load_tiny_pair()[0])
    engine = cost_mod.describe(target)
    target.attention = "torch"
    assert cost_mod.describe(target) != engine
    target.attention, target.matrix_path = "cpu", "another_path"  # each matrix path costs a verify row its own
    assert cost_mod.describe(target) != engine


def test_cached_cost_models_name_the_engine_build(monkeypatch):
    """A rebuilt _cpu (other kernels) is measured anew: its file's hash is in the key."""
    from tt_specdec.models import cpu_llama, load_tiny_pair

    target = cpu_llama.CpuLlama(load_tiny_pair()[0])
    built = cost_mod.describe(target)
    assert cpu_llama.engine_build() in built and len(cpu_llama.engine_build()) == 16
    monkeypatch.setattr(cpu_llama, "engine_build", lambda: "0123456789abcdef")
    assert cost_mod.describe(target) != built


def test_measure_times_k_max_drafts_of_a_drafter_that_stops_early(tiny_pair):
    """On measure's random context an EAGLE head is unsure at once; c must still be k_max - 1 steps' worth."""
    from tt_specdec.drafters import EagleDrafter, EagleHead, LookupFirstDrafter, TreeDrafter
    from tt_specdec.models import load_tiny_pair

    own_target = load_tiny_pair()[0]
    eagle = EagleDrafter(own_target, EagleHead.for_target(own_target))
    eagle.stop_reach = 1.0  # would stop after one draft
    steps = []
    real = eagle.propose

    def counting(*args):
        out = real(*args)
        steps.append(out.tokens.shape[1])
        return out

    eagle.propose = counting
    hybrid = LookupFirstDrafter(eagle)
    measure(own_target, hybrid, k_max=4, repeats=1)
    assert max(steps) == 4 and eagle.stop_reach == hybrid.stop_reach == 1.0, "timed in full, then restored"

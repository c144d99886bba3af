"""Speculative sampling is lossless end to end: with the tiny pair, the tokens it emits have
the target's own distribution (after temperature, top-k, top-p), checked with a chi-square
test on 1000 seeded rows, under the rejection rule (chains, and token trees by recursive rejection over
siblings) and under coupled sampling (Gumbel-max). Seeded runs reproduce exactly, different seeds differ, and a row's
output does not depend on its batch neighbours."""
import pytest
import torch

from tt_specdec.drafters import ModelDrafter, NgramDrafter, TreeDrafter
from tt_specdec.sampling import Sampling
from tt_specdec.sampling import process_logits
from tt_specdec.speculative.loop import speculative_generate

# 0.999 quantiles of the chi-square distribution, df = 1..60 (standard tables; checked below):
# a fit of the target's own distribution fails with probability 0.001 per check (the seeds are
# fixed, so a run passes or fails for good)
CHI2_999 = [10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588,
            31.264, 32.909, 34.528, 36.123, 37.697, 39.252, 40.790, 42.312, 43.820, 45.315,
            46.797, 48.268, 49.728, 51.179, 52.620, 54.052, 55.476, 56.892, 58.301, 59.703,
            61.098, 62.487, 63.870, 65.247, 66.619, 67.985, 69.346, 70.703, 72.055, 73.402,
            74.745, 76.084, 77.419, 78.750, 80.077, 81.400, 82.720, 84.037, 85.351, 86.661,
            87.968, 89.272, 90.573, 91.872, 93.168, 94.461, 95.751, 97.039, 98.324, 99.607]
MIN_EXPECTED = 5  # bins expecting fewer samples are merged

PROMPT = list(b"\n\nclass")  # next byte ' ' has p ~ 0.98; after it the class name's first letter: ~20 likely bytes
B = 1000
K = 3
MAX_NEW = 4  # token 1 from the prefill, tokens 2..4 from speculative steps
SETTINGS = [(1.0, 0, 1.0), (0.8, 20, 1.0), (1.0, 0, 0.9)]  # (temperature, top_k, top_p)
# (drafter, (temperature, top_k, top_p, coupled)): the rejection rule, then coupled sampling; "tree": token
# trees of width 3 (the rejection rule recurses over siblings)
RUNS = ([("model", s + (False,)) for s in SETTINGS] + [("ngram", SETTINGS[0] + (False,))]
        + [("tree", s + (False,)) for s in SETTINGS]
        + [("model", s + (True,)) for s in SETTINGS] + [("ngram", SETTINGS[0] + (True,))])
DRAFTERS = {"model": ModelDrafter, "ngram": lambda draft: NgramDrafter(),
            "tree": lambda draft: TreeDrafter(draft, top_children=3)}


def test_critical_values_are_the_0999_quantiles():
    # P(chi2_df > x) = Q(df/2, x/2), the regularized upper incomplete gamma function
    for df, x in enumerate(CHI2_999, start=1):
        tail = float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(x / 2)))
        assert abs(tail - 0.001) < 1e-5, (df, x, tail)


def chi_square(samples: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson statistic and degrees of freedom of samples [N] (token ids) against probs [V]."""
    counts = torch.bincount(samples, minlength=probs.shape[0]).double()
    expected = len(samples) * probs.double()
    order = expected.argsort(descending=True)
    n_big = int((expected >= MIN_EXPECTED).sum())
    obs = torch.cat([counts[order[:n_big]], counts[order[n_big:]].sum().view(1)])
    exp = torch.cat([expected[order[:n_big]], expected[order[n_big:]].sum().view(1)])
    if exp[-1] < MIN_EXPECTED:  # the merged tail is itself too small: fold it into the last bin
        obs, exp = torch.cat([obs[:-2], obs[-2:].sum().view(1)]), torch.cat([exp[:-2], exp[-2:].sum().view(1)])
    return float(((obs - exp) ** 2 / exp).sum()), len(exp) - 1


def target_probs(target, context: list[int], temperature, top_k, top_p) -> torch.Tensor:
    """[V] the target's sampling distribution after `context` (float64)."""
    with torch.no_grad():
        logits = target.forward_train(torch.tensor([context]))[0, -1].float()
    return process_logits(logits, temperature, top_k, top_p)


def check_fits(samples: torch.Tensor, probs: torch.Tensor, what: str) -> None:
    impossible = torch.bincount(samples, minlength=probs.shape[0])[probs == 0]
    assert int(impossible.sum()) == 0, f"{what}: {int(impossible.sum())} samples of zero-probability tokens"
    stat, df = chi_square(samples, probs)
    if df == 0:  # one token carries all but < MIN_EXPECTED of the mass: nothing more to test
        return
    critical = CHI2_999[df - 1]
    assert stat < critical, f"{what}: chi-square {stat:.1f} with {df} df > {critical} (n={len(samples)})"


@pytest.fixture(scope="module")
def runs(tiny_pair):
    """(tokens [B, MAX_NEW], stats) per (drafter, setting): B seeded copies of PROMPT."""
    target, draft = tiny_pair
    out = {}
    for name, setting in RUNS:
        drafter = DRAFTERS[name](draft)
        gen = speculative_generate(target, drafter, [PROMPT] * B, k=K, max_new_tokens=MAX_NEW,
                                   sampling=Sampling(*setting), seed=20240)
        out[name, setting] = torch.tensor(gen.tokens), gen.stats
    return out


@pytest.mark.parametrize("drafter_name, setting", RUNS)
def test_emitted_tokens_have_the_target_distribution(tiny_pair, runs, drafter_name, setting):
    target, _ = tiny_pair
    tokens, stats = runs[drafter_name, setting]
    setting = setting[:3]  # (temperature, top_k, top_p) of the target's distribution
    assert 0 < stats.accepted < stats.drafted, "both the accept and the reject branch must be exercised"
    # token 1: the prefill's own sample
    check_fits(tokens[:, 0], target_probs(target, PROMPT, *setting), "token 1")
    # token 2 given the most common token 1 (the main check, ~20 bins): accepted d_1 or the residual
    # sample at a rejection
    t1 = int(tokens[:, 0].mode().values)
    rows = tokens[:, 0] == t1
    assert int(rows.sum()) > 0.9 * B
    check_fits(tokens[rows, 1], target_probs(target, PROMPT + [t1], *setting), f"token 2 after {t1}")
    # token 3 given the most common (token 1, token 2): d_2 accepted / rejected, or a bonus, or the next step
    pairs, counts = tokens[rows, :2].unique(dim=0, return_counts=True)
    t12 = pairs[counts.argmax()].tolist()
    rows3 = (tokens[:, :2] == torch.tensor(t12)).all(1)
    assert int(rows3.sum()) > 100
    check_fits(tokens[rows3, 2], target_probs(target, PROMPT + t12, *setting), f"token 3 after {t12}")


def test_the_chi_square_test_would_catch_the_draft_distribution(tiny_pair, runs):
    # what "always accept the draft" would emit: the test must reject it, or it proves nothing
    target, draft = tiny_pair
    tokens, _ = runs["model", SETTINGS[0] + (False,)]
    t1 = int(tokens[:, 0].mode().values)
    samples = tokens[tokens[:, 0] == t1, 1]
    q = target_probs(draft, PROMPT + [t1], *SETTINGS[0])
    p = target_probs(target, PROMPT + [t1], *SETTINGS[0])
    assert float((p - q).abs().sum()) / 2 > 0.2, "draft and target too alike here to tell apart"
    stat, df = chi_square(samples, q)
    assert stat > CHI2_999[df - 1], f"samples fit the draft's distribution too (chi-square {stat:.1f}, {df} df)"


SAMPLED = Sampling(temperature=1.0, top_k=0, top_p=1.0)
ROW_PROMPTS = [list(p.encode()) for p in ("def merge(a, b):\n    ", "import ", "The cat", "x = [")]


def sample(tiny_pair, prompts, seed, k=4):
    target, draft = tiny_pair
    return speculative_generate(target, ModelDrafter(draft), prompts, k=k, max_new_tokens=16,
                                sampling=SAMPLED, seed=seed).tokens


def test_seeded_runs_reproduce_and_different_seeds_differ(tiny_pair):
    first = sample(tiny_pair, ROW_PROMPTS, seed=1)
    assert sample(tiny_pair, ROW_PROMPTS, seed=1) == first
    other = sample(tiny_pair, ROW_PROMPTS, seed=2)
    assert sum(a != b for a, b in zip(first, other)) >= 3, "different seeds should give different samples"
    # each row has its own seed: copies of one prompt in one batch are sampled independently
    copies = sample(tiny_pair, [ROW_PROMPTS[0]] * 4, seed=1)
    assert len({tuple(t) for t in copies}) >= 3
    assert copies[0] == first[0], "row 0 has the same seed whatever the batch"


def test_a_row_does_not_depend_on_its_batch_neighbours(tiny_pair):
    # row b's seed is derived from (seed, b): compare rows at the same index across batches
    batch = sample(tiny_pair, ROW_PROMPTS, seed=5)
    alone = sample(tiny_pair, ROW_PROMPTS[:1], seed=5)
    assert alone[0] == batch[0]
    neighbours = sample(tiny_pair, ROW_PROMPTS[:2] + [list(b"while True:\n"), list(b"#")], seed=5)
    assert neighbours[:2] == batch[:2]
    assert neighbours[2:] != batch[2:]

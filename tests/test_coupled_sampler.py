"""The coupled sampler of tt_specdec.sampling: its noise is the counter-based hash of (row seed, position,
token id), and argmax(log p + g) is an exact sample of the processed distribution p (chi-square over
20,000 (seed, position) pairs, with temperature, top-k and top-p, and over a drafter's id subset).
(Not test_sampling.py: tests/speculative/ has one, and test files need unique basenames here.)"""
import math

import numpy as np
import pytest
import torch

from tt_specdec.sampling import STREAM_GUMBEL, _hash, coupled_sample, coupled_scores, gumbel, process_logits, row_seeds

N = 20000


def chi_square(samples, probs):
    """Pearson statistic and degrees of freedom of ids [N] against probs [V]; a token with probability 0
    must never be drawn."""
    counts = torch.bincount(samples, minlength=probs.shape[0]).double()
    support = probs > 0
    assert counts[~support].sum() == 0, "sampled a token of probability 0"
    expected = samples.shape[0] * probs[support]
    assert float(expected.min()) >= 5, "too few samples per bin for the chi-square approximation"
    return float(((counts[support] - expected) ** 2 / expected).sum()), int(support.sum()) - 1


def critical(df):
    """0.999 quantile, Wilson-Hilferty (within 1% for df >= 3)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + 3.0902 * math.sqrt(a)) ** 3


def draws(probs, ids=None, seed=5):
    """N coupled samples of one row probs [V]: rows of N different seeds at positions 0..N-1 (half each)."""
    seeds = row_seeds(seed, N)
    index = torch.arange(N) % 97
    return coupled_sample(probs.expand(N, -1).contiguous(), seeds, index, ids)


def test_noise_is_the_counter_hash_of_seed_position_and_id():
    ids = np.array([0, 1, 7, 255, 49151])
    u = ((_hash(12345, STREAM_GUMBEL, 77, ids) >> 8) + 0.5) / (1 << 24)
    assert np.allclose(gumbel(12345, 77, ids), -np.log(-np.log(u)), rtol=0, atol=1e-12)
    # a vocabulary slice gets the noise of its ids, whatever else is computed
    full = gumbel(12345, 77, np.arange(256))
    assert np.array_equal(full[ids[:4]], gumbel(12345, 77, ids[:4]))


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0.9, 6, 0.9)])
def test_gumbel_max_samples_the_processed_distribution(temperature, top_k, top_p):
    logits = torch.randn(1, 12, generator=torch.Generator().manual_seed(1)) * 1.5
    p = process_logits(logits, temperature, top_k, top_p)[0]
    stat, df = chi_square(draws(p), p)
    assert stat < critical(df), (stat, df)


def test_a_subset_of_the_vocabulary_samples_its_own_distribution_with_the_full_ids_noise():
    ids = torch.tensor([40, 3, 17, 250, 9, 128])  # columns -> full ids, as EAGLE's restricted head
    p = process_logits(torch.randn(1, 6, generator=torch.Generator().manual_seed(2)), 1.0)[0]
    samples = draws(p, ids)
    stat, df = chi_square(samples, p)
    assert stat < critical(df), (stat, df)
    # the same probabilities laid out over the full vocabulary give the same ids
    full = torch.zeros(1, 256, dtype=torch.float64)
    full[0, ids] = p
    assert torch.equal(ids[samples], draws(full[0]))


def test_the_chi_square_test_catches_a_wrong_noise():
    # uniform noise in place of Gumbel noise is not an exact sampler: the statistic must say so
    p = process_logits(torch.randn(1, 12, generator=torch.Generator().manual_seed(1)) * 1.5, 1.0)[0]
    u = torch.rand(N, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    wrong = (p.log() + u).argmax(-1)
    stat, df = chi_square(wrong, p)
    assert stat > critical(df), (stat, df)


def test_scores_mask_what_top_p_drops_and_keep_the_first_maximum():
    p = torch.tensor([[0.5, 0.0, 0.5, 0.0]], dtype=torch.float64)
    scores = coupled_scores(p, torch.tensor([1]), torch.tensor([0]))
    assert scores.dtype == torch.float32 and bool(torch.isfinite(scores).all())
    assert scores[0, 1] < -1e29 and scores[0, 3] < -1e29 and scores[0, 0] > -1e29
    assert int(coupled_sample(p, torch.tensor([1]), torch.tensor([0]))) in (0, 2)


def test_the_sample_is_the_first_argmax_of_the_scores():
    # coupled_sample takes the argmax on the support alone, the loop's accept_prefix on full rows of scores
    probs = process_logits(torch.randn(64, 300, generator=torch.Generator().manual_seed(4)) * 3, 0.8, 0, 0.9)
    seeds, index = row_seeds(2, 64), torch.arange(64) * 7
    assert torch.equal(coupled_sample(probs, seeds, index), coupled_scores(probs, seeds, index).argmax(-1))


@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0])
def test_only_columns_that_cannot_win_are_left_without_noise(scale):
    # the argmax over the pruned columns is the argmax of log p + g over the whole support
    probs = process_logits(torch.randn(200, 3000, generator=torch.Generator().manual_seed(5)) * scale, 1.0)
    seeds, index = row_seeds(8, 200), torch.arange(200)
    full = torch.stack([torch.from_numpy(np.log(p.numpy()) + gumbel(int(s), int(i), np.arange(3000)))
                        for p, s, i in zip(probs, seeds, index)])
    assert torch.equal(coupled_sample(probs, seeds, index), full.float().argmax(-1))

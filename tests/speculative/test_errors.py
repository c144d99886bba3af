"""Bad requests fail with a ValueError naming the argument, before any state is touched, and
the next call on the same target and drafter still gives the right output. Non-finite target
logits (NaN, inf) mid-generation fail naming the logits, and leave nothing behind."""
import pytest
import torch

from tt_specdec.drafters import ModelDrafter, NgramDrafter
from tt_specdec.sampling import Sampling
from tt_specdec.models import Llama, LlamaConfig, load_tiny_pair
from tt_specdec.speculative.loop import generate_plain, speculative_generate

PROMPTS = [list(b"def add(a, b):\n    "), list(b"import re\n")]
MAX_NEW = 12
K = 4


@pytest.fixture(scope="module")
def expected():
    """Plain greedy output of a separately loaded target: untouched by anything below."""
    fresh_target, _ = load_tiny_pair()
    return generate_plain(fresh_target, PROMPTS, max_new_tokens=MAX_NEW).tokens


@pytest.fixture(scope="module")
def pair(tiny_pair):
    target, draft = tiny_pair
    return target, ModelDrafter(draft)


def still_right(target, drafter, expected):
    assert speculative_generate(target, drafter, PROMPTS, k=K, max_new_tokens=MAX_NEW).tokens == expected
    assert generate_plain(target, PROMPTS, max_new_tokens=MAX_NEW).tokens == expected


BAD_REQUESTS = {
    # name: (keyword overrides of a good speculative_generate call, message pattern)
    "k=0": (dict(k=0), r"^k: got 0, expected an integer in 1\.\.31"),
    "k=-1": (dict(k=-1), r"^k: got -1"),
    "k=32": (dict(k=32), r"^k: got 32, expected an integer in 1\.\.31"),
    "k=2.0": (dict(k=2.0), r"^k: got 2\.0"),
    "k=True": (dict(k=True), r"^k: got True"),
    "max_new_tokens=0": (dict(max_new_tokens=0), r"^max_new_tokens: got 0"),
    "no prompts": (dict(prompts=[]), r"^prompts: got no prompts"),
    "empty prompt": (dict(prompts=[PROMPTS[0], []]), r"^prompts\[1\]: got an empty prompt"),
    "token -1": (dict(prompts=[[5, -1, 7]]), r"^prompts\[0\]: got token id -1, expected ints in 0\.\.255"),
    "token 256": (dict(prompts=[PROMPTS[0], [65, 256]]), r"^prompts\[1\]: got token id 256"),
    "token 3.0": (dict(prompts=[[65, 3.0]]), r"^prompts\[0\]: got token id 3\.0"),
    "token True": (dict(prompts=[[65, True]]), r"^prompts\[0\]: got token id True"),
    "prompt longer than the cache": (
        dict(prompts=[[65] * 2040]),
        r"^prompts\[0\]: got 2040 tokens; .* needs 20\d\d positions, expected at most 2048"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_names_the_argument_and_the_next_call_is_right(pair, expected, case):
    target, drafter = pair
    overrides, pattern = BAD_REQUESTS[case]
    call = dict(prompts=PROMPTS, k=K, max_new_tokens=MAX_NEW) | overrides
    with pytest.raises(ValueError, match=pattern):
        speculative_generate(target, drafter, call.pop("prompts"), **call)
    if "k" not in overrides:  # plain decoding has no k, everything else it checks the same way
        call = dict(prompts=PROMPTS, max_new_tokens=MAX_NEW) | overrides
        with pytest.raises(ValueError, match=pattern):
            generate_plain(target, call.pop("prompts"), max_new_tokens=call["max_new_tokens"])
    still_right(target, drafter, expected)


def test_the_longest_prompt_that_fits_the_cache_runs():
    # need = len + max_new_tokens + k + 1 <= max_seq_len; one more prompt token is rejected
    torch.manual_seed(0)
    target = Llama(LlamaConfig(256, 32, 1, 2, 1, 64, max_seq_len=48)).eval()
    prompt = list(b"x = 1\n" * 8)[:48 - 4 - K - 1]
    gen = speculative_generate(target, NgramDrafter(), [prompt, prompt[:5]], k=K, max_new_tokens=4)
    assert gen.tokens == generate_plain(target, [prompt, prompt[:5]], max_new_tokens=4).tokens
    with pytest.raises(ValueError, match=r"^prompts\[0\]: got 40 tokens; .* needs 49 positions, expected at most 48"):
        speculative_generate(target, NgramDrafter(), [prompt + [10]], k=K, max_new_tokens=4)


@pytest.mark.parametrize("vocab", [300, 128])
def test_draft_with_another_vocabulary_is_rejected(pair, expected, vocab):
    target, drafter = pair
    other = ModelDrafter(Llama(LlamaConfig(vocab, 32, 1, 2, 1, 64, 256)).eval())
    with pytest.raises(ValueError, match=rf"^drafter: got vocabulary size {vocab}, expected the target's 256"):
        speculative_generate(target, other, PROMPTS, k=K, max_new_tokens=MAX_NEW)
    still_right(target, drafter, expected)


@pytest.mark.parametrize("settings, pattern", [
    (dict(temperature=-0.5), r"^temperature: got -0\.5"),
    (dict(temperature=float("nan")), r"^temperature: got nan"),
    (dict(temperature=1.0, top_p=0.0), r"^top_p: got 0\.0, expected a value in \(0, 1\]"),
    (dict(temperature=1.0, top_p=1.5), r"^top_p: got 1\.5, expected a value in \(0, 1\]"),
    (dict(temperature=1.0, top_k=-1), r"^top_k: got -1"),
])
def test_bad_sampling_settings_name_the_argument(pair, expected, settings, pattern):
    target, drafter = pair
    with pytest.raises(ValueError, match=pattern):
        speculative_generate(target, drafter, PROMPTS, k=K, max_new_tokens=MAX_NEW, sampling=Sampling(**settings))
    still_right(target, drafter, expected)


class BadLogitsOnce:
    """A Decoder wrapping the target whose `fail_at`-th call (counting prefill and forward)
    returns logits with one `bad` entry, once."""

    def __init__(self, inner, bad: float, fail_at: int):
        self.inner, self.bad, self.fail_at, self.calls = inner, bad, fail_at, 0
        self.vocab_size, self.max_seq_len = inner.vocab_size, inner.max_seq_len

    def allocate_cache(self, batch_size, cache_len, keep_hidden=False):
        self.inner.allocate_cache(batch_size, cache_len, keep_hidden)

    def spoil(self, logits):
        self.calls += 1
        if self.calls == self.fail_at:
            logits = logits.clone()
            logits.view(-1)[logits.numel() // 2] = self.bad
        return logits

    def prefill(self, tokens, lengths):
        return self.spoil(self.inner.prefill(tokens, lengths))

    def forward(self, tokens, pos):
        return self.spoil(self.inner.forward(tokens, pos))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("fail_at", [1, 3])  # 1: the prefill, 3: the second verify / decode step
@pytest.mark.parametrize("speculative", [True, False])
def test_non_finite_logits_fail_naming_the_logits_and_the_next_call_is_right(pair, expected, bad, fail_at,
                                                                             speculative):
    target, drafter = pair
    wrapped = BadLogitsOnce(target, bad, fail_at)
    run = ((lambda: speculative_generate(wrapped, drafter, PROMPTS, k=K, max_new_tokens=MAX_NEW)) if speculative
           else (lambda: generate_plain(wrapped, PROMPTS, max_new_tokens=MAX_NEW)))
    with pytest.raises(ValueError, match=r"^(target_)?logits: got a non-finite value"):
        run()
    assert wrapped.calls == fail_at, "the error must come at the bad call, not later"
    assert run().tokens == expected  # same wrapper, now healthy
    still_right(target, drafter, expected)


@pytest.mark.parametrize("values, ok", [([3e38, 3e38, -1.0], True),  # the sum overflows, every value is finite
                                        ([1.0, float("nan")], False), ([0.0, float("inf"), float("-inf")], False),
                                        ([2.0, float("-inf"), 5.0], False)])
def test_check_finite_decides_by_element_not_by_sum(values, ok):
    from tt_specdec.errors import check_finite

    t = torch.tensor(values)
    if ok:
        check_finite("logits", t)
    else:
        with pytest.raises(ValueError, match=r"^logits: got a non-finite value \(NaN or inf\) at index \[1\]"):
            check_finite("logits", t)

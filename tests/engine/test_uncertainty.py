import numpy as np
import pytest

from desktop.engine.errors import PointillistError
from desktop.engine.segmentation import uncertainty


def probs_from(pairs):
    """(C=2, 1, N) map from a list of class-1 probabilities."""
    p1 = np.asarray(pairs, np.float32)[None, :]
    return np.stack([1 - p1, p1])


def test_confident_pixels_score_lowest_for_every_strategy():
    probs = probs_from([0.99, 0.5, 0.8, 0.01])
    for strategy in ("entropy", "least_confidence", "margin"):
        s = uncertainty.score(strategy, probs)[0]
        assert s.argmax() == 1, strategy
        assert s[0] < s[2] and s[3] < s[2], strategy


def test_margin_uses_top_two_of_many_classes():
    # pixel 0: 0.4 vs 0.35 (close call); pixel 1: 0.6 vs 0.2 (clear); third class ignored
    probs = np.array([[0.4, 0.6], [0.35, 0.2], [0.25, 0.2]], np.float32)[:, None, :]
    s = uncertainty.margin(probs)[0]
    assert s[0] == pytest.approx(1 - 0.05, abs=1e-6)
    assert s[1] == pytest.approx(1 - 0.4, abs=1e-6)


def test_entropy_is_log_c_for_uniform():
    probs = np.full((4, 2, 2), 0.25, np.float32)
    assert np.allclose(uncertainty.entropy(probs), np.log(4), atol=1e-5)


def test_least_confidence_values():
    probs = probs_from([0.7, 0.9])
    assert np.allclose(uncertainty.least_confidence(probs)[0], [0.3, 0.1], atol=1e-6)


def test_bald_separates_disagreement_from_agreed_doubt():
    # pixel 0: every sample says 50/50 (aleatoric: BALD 0). pixel 1: samples flip between
    # confident answers (epistemic: BALD high). Entropy of the mean is the same for both.
    samples = np.array([[[0.5, 0.99]], [[0.5, 0.01]]] * 4, np.float32)  # (T=8, 1, 2) class-1 prob
    mc = np.stack([1 - samples[:, 0], samples[:, 0]], axis=1)[:, :, None, :]  # (T, C, 1, 2)
    s = uncertainty.bald(mc)[0]
    assert s[0] == pytest.approx(0.0, abs=1e-6)
    assert s[1] > 0.6


def test_random_is_seeded_and_dispatch_validates():
    a = uncertainty.score("random", shape=(3, 4), rng=np.random.default_rng(1))
    b = uncertainty.score("random", shape=(3, 4), rng=np.random.default_rng(1))
    assert a.shape == (3, 4) and np.array_equal(a, b)
    with pytest.raises(PointillistError, match="Unknown segmentation strategy 'vibes': choose one of"):
        uncertainty.score("vibes", probs_from([0.5]))
    with pytest.raises(ValueError, match="MC-dropout"):
        uncertainty.score("bald", probs_from([0.5]))

"""One strategy registry per task: every path reads it, an unknown or unsupported name is a
clear error, never a silent substitute (issue 15)."""
import numpy as np
import pytest

from desktop.cli import main
from desktop.engine.errors import PointillistError
from desktop.engine.keypoints import strategies as keypoint_strategies
from desktop.engine.segmentation import strategies as segmentation_strategies
from desktop.engine.segmentation import uncertainty
from desktop.engine.segmentation.slide_learning import scaled_uncertainty


def test_every_segmentation_strategy_scores_from_what_it_says_it_needs():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(8, 8)).transpose(2, 0, 1).astype(np.float32)
    given = {segmentation_strategies.PROBABILITIES: {"probs": probs},
             segmentation_strategies.MC_SAMPLES: {"mc_probs": np.stack([probs, probs[::-1]])},
             segmentation_strategies.NOTHING: {"rng": rng, "shape": (8, 8)}}
    for name, entry in segmentation_strategies.STRATEGIES.items():
        scores = uncertainty.score(name, **given[entry.needs])
        assert scores.shape == (8, 8) and np.isfinite(scores).all(), name


def test_an_unknown_segmentation_strategy_names_the_choices():
    with pytest.raises(PointillistError, match="Unknown segmentation strategy 'confidence': choose one of margin"):
        uncertainty.score("confidence", np.ones((2, 4, 4), np.float32) / 2)


def test_a_slide_tile_refuses_what_it_cannot_compute_instead_of_using_margin():
    probs = np.full((2, 4, 4), 0.5, np.float32)
    assert scaled_uncertainty("entropy", probs).max() == pytest.approx(1.0)
    for name in ("bald", "random"):
        with pytest.raises(PointillistError, match=f"'{name}' needs .* which a slide tile does not compute; "
                                                   "choose one of margin, entropy, least_confidence"):
            scaled_uncertainty(name, probs)


def test_spread_is_a_benchmark_strategy_and_the_app_refuses_it():
    assert "spread" in keypoint_strategies.STRATEGIES and "spread" not in keypoint_strategies.APP_STRATEGIES
    with pytest.raises(PointillistError, match="spread is a benchmark strategy"):
        keypoint_strategies.strategy("spread", in_app=True)
    with pytest.raises(PointillistError, match="Unknown keypoint strategy 'margin'"):
        keypoint_strategies.strategy("margin")


def test_a_keypoint_score_is_shown_in_its_own_unit():
    assert keypoint_strategies.describe_score("flip", 12.4) == "flip: 12 px apart"
    assert keypoint_strategies.describe_score("confidence", 0.25) == "confidence: 25% uncertain"
    assert keypoint_strategies.confidence_from_score("confidence", 0.25) == 0.75
    assert keypoint_strategies.confidence_from_score("flip", 12.4) is None  # pixels say nothing of confidence


def test_the_command_line_offers_what_the_registries_hold(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "segmentation", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in segmentation_strategies.STRATEGIES)
    with pytest.raises(SystemExit):
        main(["bench", "keypoints", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in keypoint_strategies.STRATEGIES)

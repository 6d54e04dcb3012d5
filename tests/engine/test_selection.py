import numpy as np

from desktop.engine.segmentation import selection


def test_select_draws_only_from_the_top_fraction():
    rng = np.random.default_rng(0)
    scores = np.zeros((100, 100), np.float32)
    scores[40:45, 40:60] = 1.0  # 100 px = 1 % of the image: well inside the top 5 %
    scores[10:12, 10:50] = 0.9  # the rest of the top 5 % pool
    scores[80:, :] = 0.5
    points = selection.select_pixels(scores, 10, rng, top_fraction=0.01)
    assert len(points) == 10
    assert (scores[points[:, 0], points[:, 1]] == 1.0).all()


def test_select_excludes_and_spaces_queries():
    rng = np.random.default_rng(0)
    scores = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    exclude = np.zeros_like(scores, bool)
    exclude[:, :32] = True
    points = selection.select_pixels(scores, 8, rng, exclude=exclude, min_distance=6)
    assert len(points) == 8
    assert (points[:, 1] >= 32).all()
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    assert d[np.triu_indices(len(points), 1)].min() >= 6


def test_select_is_random_within_the_pool_not_just_the_argmax():
    scores = np.linspace(0, 1, 100 * 100, dtype=np.float32).reshape(100, 100)
    a = selection.select_pixels(scores, 5, np.random.default_rng(0))
    b = selection.select_pixels(scores, 5, np.random.default_rng(1))
    assert not np.array_equal(a, b)
    threshold = np.quantile(scores, 0.95)
    assert (scores[a[:, 0], a[:, 1]] >= threshold).all()


def test_select_fills_from_the_rest_when_spacing_runs_out_and_handles_nothing_allowed():
    scores = np.zeros((50, 50), np.float32)
    scores[25, 25] = 1.0
    points = selection.select_pixels(scores, 4, np.random.default_rng(0), top_fraction=0.0004, min_distance=10)
    assert len(points) == 4 and (25, 25) in {tuple(p) for p in points}
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    assert d[np.triu_indices(len(points), 1)].min() >= 10
    none = selection.select_pixels(scores, 3, np.random.default_rng(0), exclude=np.ones((50, 50), bool))
    assert none.shape == (0, 2)


def test_cold_start_finds_one_point_per_region_of_distinct_features():
    # Three regions with different feature vectors; the biggest region comes first.
    feats = np.zeros((4, 16, 16), np.float32)
    feats[0, :, :8] = 1.0       # left half (largest)
    feats[1, :8, 8:] = 1.0      # top right quarter
    feats[2, 8:, 8:] = 1.0      # bottom right quarter
    feats += np.random.default_rng(0).normal(0, 0.01, feats.shape).astype(np.float32)
    points = selection.cold_start(feats, (64, 64), 3, np.random.default_rng(0))
    assert len(points) == 3
    regions = {("L" if x < 32 else ("TR" if y < 32 else "BR")) for y, x in points}
    assert regions == {"L", "TR", "BR"}
    assert points[0][1] < 32


def test_image_uncertainty_and_ranking():
    calm = np.full((10, 10), 0.1, np.float32)
    doubtful = calm.copy()
    doubtful[0, :5] = 0.9
    values = {1: selection.image_uncertainty(calm), 2: selection.image_uncertainty(doubtful)}
    assert values[2] > values[1]
    assert selection.rank_images(values) == [2, 1]


def test_uncertain_pool_holds_only_top_allowed_pixels():
    scores = np.zeros((40, 50))
    scores[10:20, 10:20] = 1.0  # 100 pixels = 5 % of 2000
    exclude = np.zeros_like(scores, bool)
    exclude[10, 10] = True
    pool = selection.uncertain_pool(scores, np.random.default_rng(0), exclude=exclude, top_fraction=0.05)
    assert len(pool) == 100 and len({tuple(p) for p in pool}) == 100
    inside = (pool[:, 0] >= 10) & (pool[:, 0] < 20) & (pool[:, 1] >= 10) & (pool[:, 1] < 20)
    assert inside.sum() >= 99 and not ((pool[:, 0] == 10) & (pool[:, 1] == 10)).any()
    assert len(selection.uncertain_pool(scores, np.random.default_rng(0), top_fraction=0.05, limit=7)) == 7


def test_select_diverse_asks_first_about_what_the_labels_do_not_cover():
    # 50 candidates look exactly like the labelled pixels, 3 look different: those come first.
    known = np.zeros((4, 8))
    embeddings = np.vstack([np.zeros((50, 8)), np.eye(8)[:3] * 5])
    candidates = np.stack([np.arange(53), np.arange(53)], 1)
    for seed in range(5):
        chosen = selection.select_diverse(candidates, embeddings, 3, np.random.default_rng(seed), labelled=known)
        assert sorted(chosen[:, 0].tolist()) == [50, 51, 52]


def test_select_diverse_spreads_picks_and_keeps_distance():
    rng = np.random.default_rng(1)
    candidates = np.stack([rng.integers(0, 100, 200), rng.integers(0, 100, 200)], 1)
    embeddings = rng.normal(size=(200, 4))
    chosen = selection.select_diverse(candidates, embeddings, 10, np.random.default_rng(0), min_distance=15)
    assert len(chosen) == 10 and len({tuple(p) for p in chosen}) == 10
    d = np.sqrt(((chosen[:, None] - chosen[None]) ** 2).sum(-1))
    assert d[~np.eye(10, dtype=bool)].min() >= 15
    # identical embeddings carry no preference: still k distinct picks
    same = selection.select_diverse(candidates, np.zeros((200, 4)), 5, np.random.default_rng(0))
    assert len({tuple(p) for p in same}) == 5


def test_choose_queries_pools_the_uncertain_then_asks_what_labels_do_not_cover():
    scores = np.full((60, 100), 0.1, np.float32)
    scores[20:40, 10:30] = 0.9  # two doubtful regions of different kinds
    scores[20:40, 70:90] = 0.9
    kind = lambda yx: (np.asarray(yx)[:, 1:2] > 50).astype(np.float64)  # left or right, as the model sees it
    labelled_left = np.array([[30, 20]])
    picks = selection.choose_queries(scores, 1, np.random.default_rng(0), kind, labelled=labelled_left)
    assert len(picks) == 1 and 20 <= picks[0, 0] < 40 and 70 <= picks[0, 1] < 90  # the uncovered kind
    two = selection.choose_queries(scores, 2, np.random.default_rng(1), kind, min_distance=5)
    assert sorted(int(p[1] > 50) for p in two) == [0, 1]
    almost_all = np.ones(scores.shape, bool)
    almost_all[0, :3] = False  # a pool too small for k: the plain draw fills what it can
    assert len(selection.choose_queries(scores, 5, np.random.default_rng(0), kind, exclude=almost_all)) == 3


def test_a_confident_pixel_unlike_every_labelled_one_is_asked_before_doubtful_ones_like_them():
    """The model is torn along a border it has labels on (the doubtful band looks, to it, like
    the labelled pixels), and sure of a region it has never seen labelled (it may be wrong there):
    the uncertain pool alone never asks there, the pixels drawn over the whole image do."""
    scores = np.full((100, 100), 0.05, np.float32)
    scores[:, 47:52] = 0.95  # the band along the predicted border: the top 5 %
    unseen = (slice(70, 100), slice(0, 30))
    kind = lambda yx: ((yx[:, :1] >= 70) & (yx[:, 1:] < 30)).astype(np.float64)  # the unseen region, or not
    labelled = np.array([[10, 49], [50, 50], [90, 51], [20, 20]])
    for seed in range(5):
        picks = selection.choose_queries(scores, 1, np.random.default_rng(seed), kind, labelled=labelled)
        assert len(picks) == 1 and unseen[0].start <= picks[0, 0] and picks[0, 1] < unseen[1].stop
    pool = selection.uncertain_pool(scores, np.random.default_rng(0))
    assert (scores[pool[:, 0], pool[:, 1]] == np.float32(0.95)).all()  # what the pool alone would offer


def test_the_pixels_drawn_over_the_image_are_distinct_and_never_excluded():
    exclude = np.zeros((40, 50), bool)
    exclude[:, :45] = True
    drawn = selection.coverage_pool(exclude.shape, 100, np.random.default_rng(0), exclude)
    assert len(drawn) == 100 and len({tuple(p) for p in drawn}) == 100 and (drawn[:, 1] >= 45).all()
    assert len(selection.coverage_pool(exclude.shape, 1000, np.random.default_rng(0), exclude)) == 200


def test_choose_queries_fills_up_when_spacing_closes_off_a_compact_pool():
    scores = np.full((64, 64), 0.1, np.float32)
    scores[10:25, 10:24] = np.linspace(0.5, 0.9, 14)[None]  # a small uncertain patch
    embed = lambda yx: np.asarray(yx, np.float64)
    picks = selection.choose_queries(scores, 8, np.random.default_rng(0), embed, min_distance=8)
    assert len(picks) == 8 and len({tuple(p) for p in picks}) == 8
    d = np.sqrt(((picks[:, None] - picks[None]) ** 2).sum(-1))
    assert d[np.triu_indices(8, 1)].min() >= 8

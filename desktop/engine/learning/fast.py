"""The fast learner: a small per-pixel head on frozen, cached encoder features.

The head is ``Linear -> ReLU -> Dropout -> Linear``. Its first layer is linear, so applying it
to the stride-4 feature map and then resizing the result bilinearly to full resolution gives
exactly what applying it to bilinearly resized features would; prediction therefore costs a
64-channel resize instead of a 496-channel one, and still gives per-pixel (not per-block)
answers. Training samples features at the labelled pixels with the same bilinear rule.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from desktop.engine.learning.base import FitReport, ImageRef, Interrupted, PointLabels, concat_labels
from desktop.engine.learning.fast_inference import FastInference
from desktop.engine.learning.features import FEATURE_STRIDE, FeatureCache, FeatureMap, sample_points
from desktop.engine.learning.grid_head import Levels, head_probabilities
from desktop.engine.learning.label_features import LabelFeatures
from desktop.engine.learning.point_features import PointFeatures

_PRECOMPUTE = 100_000  # up to this many labels, their features are gathered once (and kept: LabelFeatures)
_BATCH = 4096  # labels per step (all of them when there are fewer)
_STEP_ROWS = _BATCH // 2
"""Rows per step once there are more than ``_BATCH`` (``fit``): a step then costs what one on about
2,000 rows does (1,000 labels and their anchors), so that a round on 100,000 labels costs about
what one on 1,000 does (issue 19: 0.93 s and 2.00 s with 4,096 rows a step, 0.94 s and 1.12 s
with 2,048). The 150 steps of the app's round still take each of 100,000 rows about 3 times;
ISBI, 100,000 labels on images 0-3, 5 rounds, mIoU on images 25-29, seeds 0-2: 0.7287 against
0.7290 before (a fresh batch of 4,096 drawn at every step)."""
_ANCHOR_CANDIDATES = 4000  # at most this many pixels per image looked at when drawing anchors
_ANCHOR_BUDGET = 3000  # anchors per fit in all, so that a fit stays one batch (_BATCH) while labels are few
_ANCHOR_WEIGHT = 0.3  # all anchors together weigh this much of the expert's labels (see fit)
_STATS_SAMPLE = 16384  # pixels sampled for the input statistics, all images together
_ASK_EVERY = 8  # steps between questions to ``interrupted`` (a step takes about a millisecond)
ENCODER_SHARE = 0.03
"""The encoder's 496 channels enter the head at this scale while labels are few (10 per image or
fewer), the filters' 7 at full scale: a prior that the filters explain a pixel unless the labels
say otherwise. Measured (docs/architecture.md, learner decisions): with 10 random labels per
image, at unit scale the head fitted the deep channels to a few hundred points, 0.63 mIoU on
ISBI and 0.66 on MoNuSeg, under the random forest on filters alone (0.66, 0.74); at 0.03 it is
level or ahead. ``encoder_share`` loosens the prior as labels come."""


def encoder_share(labels_per_image: float) -> float:
    """The encoder channels' scale for this many expert labels per labelled image:
    ``ENCODER_SHARE`` up to 10, then growing with the square root of the count, to 1 for dense
    masks. Held at 0.03, margin's 100th label per image scored 0.709 (ISBI) and 0.772 (MoNuSeg)
    against 0.711 and 0.775 at unit scale; growing, the deep channels help where the labels
    can pin them down."""
    return min(1.0, ENCODER_SHARE * math.sqrt(max(1.0, labels_per_image / 10)))


def _cyclic(values: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """``size`` consecutive rows of ``values`` from row ``start``, going round to its first rows
    past its end (a view where they do not go round)."""
    start %= len(values)
    end = start + size
    if end <= len(values):
        return values[start:end]
    return torch.cat([values[start:], values[:end - len(values)]])


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class PixelHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_channels))
        self.register_buffer("std", torch.ones(in_channels))
        self.inp = nn.Linear(in_channels, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes)

    def standardise(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std

    def hidden_points(self, feats: torch.Tensor) -> torch.Tensor:
        return self.inp(self.standardise(feats))

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from first-layer outputs ``(..., hidden)``."""
        return self.out(self.drop(F.relu(hidden)))

    def hidden_map(self, fmap: FeatureMap) -> torch.Tensor:
        """First-layer output at full resolution: (H, W, hidden) float32."""
        rows, cols, coarse = fmap.values.shape
        w = self.inp.weight / self.std
        b = self.inp.bias - w @ self.mean
        h = fmap.values.reshape(-1, coarse).float() @ w[:, :coarse].T
        # Channels-last all the way: the resize is fast on it and its result is (H, W, hidden).
        h = h.reshape(1, rows, cols, -1).permute(0, 3, 1, 2)
        full = F.interpolate(h, size=(rows * FEATURE_STRIDE, cols * FEATURE_STRIDE), mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0)[:fmap.height, :fmap.width]
        return torch.addmm(b, fmap.fine.reshape(-1, fmap.fine.shape[-1]).float(), w[:, coarse:].T
                           ).view(fmap.height, fmap.width, -1).add_(full)


class FastLearner:
    name = "fast"
    windows_cost_their_cells = True  # predict_grid over a window costs that window's cells (grid_head.py)

    def __init__(self, num_classes: int, cache: FeatureCache, hidden: int = 64, lr: float = 3e-3,
                 seed: int = 0, anchors_per_image: int = 300, anchor_confidence: float = 0.95,
                 levels: Levels | None = None):
        self.num_classes = num_classes
        self.cache = cache
        self.points = PointFeatures(cache, seed)
        self.lr = lr
        self.anchors_per_image = anchors_per_image
        self.anchor_confidence = anchor_confidence
        torch.manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        self.head = PixelHead(cache.extractor.channels, num_classes, hidden)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=lr, weight_decay=1e-2)
        self._stats_ready = False
        self._trained = False
        self._share = ENCODER_SHARE  # the encoder channels' scale in the head's standardisation
        self.levels = levels or Levels()  # cell-averaged features of the image in view (grid_head.py)
        self.label_features = LabelFeatures()
        self.held_back_features = LabelFeatures()  # the validation labels', kept apart (``predict_labels``)
        self._shuffled = torch.zeros(0, 0)  # the memory of ``_shuffle``'s copy, kept from fit to fit

    @property
    def trained(self) -> bool:
        return self._trained

    def features(self, image: ImageRef) -> FeatureMap:
        return self.cache.get(image.key, image.load)

    def _stats_sample(self, fmap: FeatureMap, images: int, key: str | None = None) -> torch.Tensor:
        """One labelled image's share of the pixels that ``_init_stats`` measures, drawn from its
        map when the first fit reads it anyway (for its labels' features), so that a first fit
        reads each map once: with 50 images of 2048 x 2048 (16 GB of maps, beyond the cache) a
        separate pass computed every map twice. ``_STATS_SAMPLE`` pixels in all, spread over the
        images: 4096 from each of 25 images took 1.5 of a first fit's 2 s on ISBI."""
        n = min(max(256, min(4096, _STATS_SAMPLE // images)), fmap.height * fmap.width)
        yx = np.stack([self._rng.integers(fmap.height, size=n), self._rng.integers(fmap.width, size=n)], 1)
        yx = yx[self.cache.done_at(key, yx)] if key is not None else yx  # a map under way: its tiles done
        return sample_points(fmap, yx.astype(np.float64))

    def _init_stats(self, samples: list[torch.Tensor]) -> None:
        """Standardise inputs with channel statistics of the labelled images (``samples``, one
        ``_stats_sample`` each; fixed afterwards), the encoder's channels scaled down to
        ``ENCODER_SHARE`` (see there). In the first fit only."""
        x = torch.cat(samples)
        self.head.mean.copy_(x.mean(0))
        std = x.std(0).clamp_min(1e-3)
        std[:self.cache.extractor.coarse_channels] /= ENCODER_SHARE
        self.head.std.copy_(std)
        self._stats_ready = True

    def _anchor_count(self, images: int) -> int:
        """Anchors per image when ``images`` images are labelled: ``_ANCHOR_BUDGET`` in all."""
        return min(self.anchors_per_image, _ANCHOR_BUDGET // images)

    def _pool_size(self, images: int) -> int:
        """Pixels kept per labelled image (``PointFeatures.pool``) when ``images`` are labelled:
        twice the anchor candidates of a fit, which draws half of them, so that anchors vary
        from round to round. All pools together hold at most 2 x 20 x ``_ANCHOR_BUDGET`` =
        120,000 pixels (about 120 MB) however many images are labelled."""
        return 2 * min(_ANCHOR_CANDIDATES, 20 * self._anchor_count(images))

    def fit(self, labels: list[PointLabels], steps: int = 300, interrupted: Interrupted | None = None) -> FitReport:
        """Continue training the head (warm start) on the given labels for ``steps`` steps.

        The step size falls from ``lr`` to zero along a cosine within each fit (a warm restart
        every fit), so the model a round publishes has settled instead of being wherever the
        last full-size step left it: with a constant step size the benchmark's mIoU swung by
        up to 0.03 between consecutive rounds. Once there is a model, its anchors (see
        ``anchor_points``) are trained on beside the labels, weighing ``_ANCHOR_WEIGHT`` of
        them all together: under the filters' prior (``ENCODER_SHARE``) a correction looks
        like its neighbours, and 300 anchors at full weight outvoted it (5 of 12 corrections
        of confidently wrong pixels learned within ``ROUNDS_AFTER_CHANGE`` rounds on the DSB
        nuclei image; 11 at equal total weight, 12 at 0.3).

        ``interrupted`` is asked every ``_ASK_EVERY`` steps; True ends the fit there.
        """
        start = time.perf_counter()
        labels = [lab for lab in labels if len(lab.yx)]
        images = {lab.image.key: lab.image for lab in labels}
        self.points.retain(images)
        expert = sum(len(lab.yx) for lab in labels)
        if expert == 0:
            return FitReport(float("nan"), 0, 0.0)
        sampled = None if self._stats_ready else {}  # image key -> its _stats_sample, in the first fit

        def standardise_from_now() -> None:
            """The input statistics (first fit: from every image not sampled yet too), then the
            encoder's share for today's labels per image."""
            if sampled is not None:
                for key, image in images.items():
                    if key not in sampled:
                        sampled[key] = self._stats_sample(self.features(image), len(images))
                self._init_stats([sampled[key] for key in images])
            self._set_share(self.cache.extractor.coarse_channels, encoder_share(expert / len(images)))

        precomputed = expert <= _PRECOMPUTE
        if precomputed:  # gathered once, and kept for the next fit (LabelFeatures)
            pool = self._pool_size(len(images)) if self.anchors_per_image else 0

            def map_of(image: ImageRef, yx: np.ndarray) -> FeatureMap:
                """An image's map, for its new labels ``yx``: its pool and, in the first fit, its
                share of the input statistics are drawn from it too, if missing. Of a map still
                computed a tile at a time (``FeatureCache.at_points``), the statistics come from
                its tiles done, and the pool waits until they are all done."""
                fmap = self.cache.at_points(image.key, image.load, yx)
                if sampled is not None and image.key not in sampled:
                    sampled[image.key] = self._stats_sample(fmap, len(images), image.key)
                if not self.cache.under_way(image.key):
                    self.points.keep(image, pool, fmap)
                return fmap

            store, rows = self.label_features.gather(labels, map_of)
            standardise_from_now()
            for image in images.values():  # a map is read only for a pool not drawn yet
                if not self.cache.under_way(image.key):
                    self.points.keep(image, pool)
            anchors = []
            if self._trained and self.anchors_per_image and expert + _ANCHOR_BUDGET <= _PRECOMPUTE:
                anchors = self._anchors(images)
                store, anchor_rows = self.label_features.add_unkept([feats for feats, _ in anchors])
                rows = np.concatenate([rows, anchor_rows])
            rows = torch.from_numpy(rows)
            cls = np.concatenate([lab.classes for lab in labels] + [c.numpy() for _, c in anchors]).astype(np.int64)
            if len(cls) <= _BATCH:  # every step takes them all: standardised once here
                feats = self.head.standardise(store[rows])
            targets = torch.from_numpy(cls)
        else:  # dense masks: millions of labels, read from the maps a batch at a time
            standardise_from_now()
            owner, yx, cls = concat_labels(labels)
            maps = [self.features(lab.image) for lab in labels]
        weight = torch.ones(len(cls))  # the expert's labels first, then the anchors
        if len(cls) > expert:
            weight[expert:] = min(1.0, _ANCHOR_WEIGHT * expert / (len(cls) - expert))
        if precomputed and len(cls) > _BATCH:
            feats, targets, weight = self._shuffle(store, rows, targets, weight)
        else:
            self._shuffled = torch.zeros(0, 0)
        self.head.train()
        loss_value, stopped = float("nan"), False
        for step in range(steps):
            if interrupted is not None and step % _ASK_EVERY == 0 and (stopped := interrupted()):
                break
            _set_lr(self.optimizer, self.lr * 0.5 * (1 + math.cos(math.pi * step / steps)))
            if len(cls) <= _BATCH:
                x, t, w = feats, targets, weight
            elif precomputed:  # the next rows of the shuffled copy, from where the last step ended
                x, t, w = (_cyclic(values, step * _STEP_ROWS, _STEP_ROWS) for values in (feats, targets, weight))
            else:  # millions of labels (dense masks): draw with replacement, a permutation is too slow
                pick = self._rng.integers(len(cls), size=_BATCH)
                x = self.head.standardise(self._gather(maps, owner[pick], yx[pick]))
                t, w = torch.from_numpy(cls[pick]), weight[torch.from_numpy(pick)]
            loss = (F.cross_entropy(self.head.classify(self.head.inp(x)), t, reduction="none") * w).sum() / w.sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_value = loss.item()
        self.head.eval()
        self._trained = True
        return FitReport(loss_value, steps, time.perf_counter() - start, interrupted=stopped)

    def _shuffle(self, store: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fit's training rows when there are more than a batch, shuffled, their features
        standardised, as one copy that the steps walk through a batch at a time (``_cyclic``).

        Why: gathering a fresh batch of 4,096 rows from the kept store at every step (and
        standardising it) cost 0.45 s of a 150-step round at 100,000 labels, which then cost
        2.9 times the round at 1,000 (issue 19). The copy gathers each row once a fit, though
        the steps take each of them several times (``_STEP_ROWS``). It is written into the same
        memory every fit (as much again as the store's rows; freed when a batch holds every
        label): 200 MB written afresh each fit took 0.18 s of page faults, 0.07 s rewritten.
        A sample of 32,768 rows a fit instead of every row cost 0.007 mIoU on ISBI after 5
        rounds on 100,000 labels; every row shuffled cost none."""
        order = torch.from_numpy(self._rng.permutation(len(targets)))
        if len(self._shuffled) < len(order) or self._shuffled.shape[1] != store.shape[1]:
            self._shuffled = torch.empty(len(order) + _BATCH, store.shape[1])  # room for a batch of new labels
        feats = torch.index_select(store, 0, rows[order], out=self._shuffled[:len(order)])
        return feats.sub_(self.head.mean).div_(self.head.std), targets[order], weight[order]

    @torch.no_grad()
    def _set_share(self, coarse: int, share: float) -> None:
        """Scale the first ``coarse`` (encoder) channels by ``share`` from now on. The head's
        first-layer weights on them are divided by the same factor, so its answers do not
        change at that moment: only the prior (weight decay, step sizes) does."""
        ratio = self._share / share
        self.head.std[:coarse] *= ratio
        self.head.inp.weight[:, :coarse] *= ratio
        self._share = share

    def anchor_points(self, image: ImageRef, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of ``image`` the model in use is sure of, with its own answers: up to ``count``
        (``anchors_per_image`` by default) drawn uniformly over the image among those it
        predicts with at least ``anchor_confidence``. Returns ``yx`` (n, 2) and classes (n,).

        Whenever there is a model, ``fit`` trains on these beside the expert's labels. Why:
        queries chosen by uncertainty sit on the predicted borders. On MoNuSeg, 39 % of
        margin's picks lie within 2 px of a true border and 40-50 % are nuclei, where 18 % of
        the pixels are; a head trained on such labels alone drifts (it called 29 % of the test
        pixels nuclei in one round and lost 0.07 mIoU). Anchors hold the bulk of each image
        where the model already had it, at no cost to the expert, as CEAL (Wang et al., 2017)
        pairs uncertain queries with confident pseudo-labels.

        Where the model was sure and wrong, the anchors of the round after a correction still
        carry the old answer and can hold it for that round; the round after that draws them
        from a model that has been told, and follows the expert. So the app trains two rounds
        after every change (``service.ROUNDS_AFTER_CHANGE``), and a test checks the second.
        """
        count = self.anchors_per_image if count is None else count
        return self._sure_points(image, count, self._pool_size(1))[:2]

    @torch.no_grad()
    def _sure_points(self, image: ImageRef, count: int, pool: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Up to ``count`` sure pixels among candidates drawn from the image's pool of ``pool``
        pixels: their ``yx``, the model's answers and their features."""
        pool_yx, pool_feats = self.points.pool(image, pool)
        candidates = min(_ANCHOR_CANDIDATES, 20 * count, len(pool_yx))
        pick = self._rng.choice(len(pool_yx), candidates, replace=False)
        yx, feats = pool_yx[pick], pool_feats[torch.from_numpy(pick)]
        self.head.eval()
        probs = torch.softmax(self.head.classify(self.head.hidden_points(feats)), dim=-1)
        confidence, answer = probs.max(1)
        sure = np.flatnonzero((confidence >= self.anchor_confidence).numpy())
        sure = self._rng.permutation(sure)[:count]
        return yx[sure], answer.numpy()[sure], feats[torch.from_numpy(sure)]

    def _anchors(self, images: dict[str, ImageRef]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Anchors (see ``anchor_points``) for each labelled image, within the budget: their
        features and classes, an entry per image that has any."""
        count = self._anchor_count(len(images))
        if count == 0:
            return []
        pool = self._pool_size(len(images))
        anchors = [self._sure_points(image, count, pool) for image in images.values()
                   if self.points.has_pool(image, pool) or not self.cache.under_way(image.key)]
        return [(feats, torch.from_numpy(classes)) for _, classes, feats in anchors if len(classes)]

    @staticmethod
    def _gather(maps: list[FeatureMap], owner: np.ndarray, yx: np.ndarray) -> torch.Tensor:
        out = torch.empty(len(owner), maps[0].channels)
        for i in np.unique(owner):
            rows = np.flatnonzero(owner == i)
            out[torch.from_numpy(rows)] = sample_points(maps[i], yx[rows])
        return out

    def predict_proba(self, image: ImageRef) -> np.ndarray:
        """Class probabilities (C, H, W) float32 at full resolution."""
        return self.predict_grid(image, 1)

    @torch.inference_mode()
    def predict_grid(self, image: ImageRef, stride: int, window: tuple[int, int, int, int] | None = None
                     ) -> np.ndarray:
        """Class probabilities (C, rows, cols) on the grid of ``stride`` (a power of two) over
        ``window`` (``y0, x0, y1, x1`` image pixels; the whole image by default): see
        ``grid_head.py``. What is in view costs what the screen shows of it."""
        self.head.eval()
        probs = head_probabilities(self.head, self.features(image), stride, window, self.levels, image.key)
        return probs.permute(2, 0, 1).contiguous().numpy()

    @torch.inference_mode()
    def predict_map(self, fmap: FeatureMap, stride: int, window: tuple[int, int, int, int]) -> np.ndarray:
        """``predict_grid`` on a map given, not an image's: a tile of a large image whose other
        tiles are still to be computed (``SegmentationEngine.predict_tile``)."""
        self.head.eval()
        return head_probabilities(self.head, fmap, stride, window, Levels(), "tile").permute(2, 0, 1).contiguous().numpy()

    @torch.inference_mode()
    def predict_points(self, image: ImageRef, yx: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) at pixels ``yx`` only: validation needs no full map."""
        self.head.eval()
        feats = sample_points(self.features(image), np.asarray(yx, np.float64).reshape(-1, 2))
        return torch.softmax(self.head.classify(self.head.hidden_points(feats)), dim=-1).numpy()

    @torch.no_grad()
    def predict_labels(self, labels: list[PointLabels]) -> list[np.ndarray]:
        """Class probabilities (N, C) at each entry's pixels, as ``predict_points`` gives them,
        from features kept by label id between calls (``LabelFeatures``, as a fit keeps the
        training labels'). Why: a round scores its model on the held-back labels; reading their
        images' maps for it every round recomputed every map that the feature cache had evicted
        (50 labelled images of 2048 x 2048 hold 16 GB of maps), where only new labels need one."""
        self.head.eval()
        store, rows = self.held_back_features.gather(labels, lambda image, yx: self.cache.at_points(image.key,
                                                                                                 image.load, yx))
        feats = store[torch.from_numpy(rows)]
        probs = torch.softmax(self.head.classify(self.head.hidden_points(feats)), dim=-1).numpy()
        return np.split(probs, np.cumsum([len(lab.yx) for lab in labels])[:-1])

    @torch.inference_mode()
    def embed_points(self, image: ImageRef, yx: np.ndarray) -> np.ndarray:
        """The head's hidden activations (N, hidden) at pixels ``yx``: how the model sees them."""
        feats = sample_points(self.features(image), np.asarray(yx, np.float64).reshape(-1, 2))
        return F.relu(self.head.hidden_points(feats)).numpy()

    @torch.inference_mode()
    def predict_mc(self, image: ImageRef, samples: int = 8) -> np.ndarray:
        """MC-dropout samples (T, C, H, W): the first layer is shared, only dropout varies."""
        hidden = self.head.hidden_map(self.features(image))
        self.head.train()
        try:
            out = [torch.softmax(self.head.classify(hidden), dim=-1).permute(2, 0, 1) for _ in range(samples)]
        finally:
            self.head.eval()
        return torch.stack(out).numpy()

    def inference_module(self) -> nn.Module:
        return FastInference(copy.deepcopy(self.cache.extractor.encoder).cpu(), self.head).eval()

    def state_dict(self) -> dict:
        return {"learner": self.name, "num_classes": self.num_classes, "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "stats_ready": self._stats_ready,
                "trained": self._trained, "encoder_share": self._share}

    def load_state_dict(self, state: dict) -> None:
        if state.get("learner") != self.name or state.get("num_classes") != self.num_classes:
            raise ValueError("these weights belong to a different learner or class count")
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._stats_ready = bool(state["stats_ready"])
        self._trained = bool(state["trained"])
        self._share = float(state.get("encoder_share", 1.0))  # weights saved before it had the encoder at 1


"""A deep learner that runs out of GPU memory while training halves its batch, then moves to the
CPU, and says so. There is no GPU here: the network's forward is wrapped to raise what CUDA
raises, ``torch.OutOfMemoryError``, for the inputs a test chooses."""
import numpy as np
import pytest
import torch

from desktop.engine.errors import PointillistError
from desktop.engine.images.pictures import read_image
from desktop.engine.keypoints.learners import DeepKeypointLearner, KeypointLabels
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.deep import DeepLearner
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine

from .helpers import blob_image, clicks_from_mask, one_thread  # noqa: F401 (autouse)
from .keypoint_data import synthetic_table


@pytest.fixture
def labels(tmp_path):
    mask = blob_image(tmp_path / "cells.png", 96)
    clicks = np.array(clicks_from_mask(mask, 10))
    return [PointLabels(ImageRef("cells", lambda: read_image(tmp_path / "cells.png")), clicks[:, 1::-1],
                        clicks[:, 2].astype(np.int64))]


def short_of_memory(net, fits):
    """Make ``net`` run out of memory on each input ``fits`` refuses; returns the (device type,
    batch) of every call, as it goes."""
    forward = net.forward
    calls = []

    def limited(x):
        calls.append((x.device.type, len(x)))
        if not fits(x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return forward(x)

    net.forward = limited
    return calls


def test_the_batch_is_halved_until_it_fits_and_the_report_says_so(tmp_path):
    project = Project.create(tmp_path / "project", classes=[("background", "#000000", "1"), ("cell", "#ff0000", "2")])
    mask = blob_image(tmp_path / "cells.png", 96)
    image_id = project.add_image(tmp_path / "cells.png", 96, 96)
    ids = [c.id for c in project.classes()]
    project.add_labels(image_id, [(x, y, ids[c]) for x, y, c in clicks_from_mask(mask, 10)])
    engine = SegmentationEngine(project, learner="deep", device="cpu", validation_fraction=0, save_models=False)
    engine.learner.crop = 64
    calls = short_of_memory(engine.learner.net, lambda x: len(x) <= 1)

    report = engine.train(3)

    assert [batch for _, batch in calls] == [4, 2, 1, 1, 1]  # halved twice, then three steps
    assert engine.learner.batch == 1 and report.published and np.isfinite(report.loss)
    assert report.note == "The CPU ran out of memory: training goes on with 1 picture at a time."
    assert engine.train(1).note == report.note  # it stays so, and the user keeps seeing why


def test_when_one_picture_does_not_fit_training_moves_to_the_cpu(labels):
    learner = DeepLearner(2, crop=64, batch=4)
    learner.fit(labels, 1)  # the optimizer has state now, which must move too
    learner.device = torch.device("meta")  # stands in for a GPU: inputs go there without memory
    moved = []
    to = learner.net.to
    learner.net.to = lambda device: moved.append(torch.device(device)) or to(device)
    calls = short_of_memory(learner.net, lambda x: x.device.type == "cpu")  # nothing fits on the 'GPU'

    report = learner.fit(labels, 2)

    assert calls == [("meta", 4), ("meta", 2), ("meta", 1), ("cpu", 4), ("cpu", 4)]
    assert moved == [torch.device("cpu")] and learner.device == torch.device("cpu") and learner.batch == 4
    assert all(t.device.type == "cpu" for state in learner.optimizer.state.values() for t in state.values()
               if torch.is_tensor(t))
    assert report.steps == 2 and np.isfinite(report.loss) and learner.trained
    assert report.note == ("The GPU ran out of memory even with one picture at a time: training goes on on "
                           "the CPU, which is slower.")
    assert learner.predict_proba(labels[0].image).shape == (2, 96, 96)


def test_no_memory_even_for_one_picture_on_the_cpu_is_a_clear_error(labels):
    learner = DeepLearner(2, crop=64, batch=2)
    short_of_memory(learner.net, lambda x: False)
    with pytest.raises(PointillistError, match="not enough memory to train the deep learner even with one "
                                               "picture at a time. Close other programs, or use the fast"):
        learner.fit(labels, 1)


def test_the_deep_keypoint_learner_halves_its_batch_too(tmp_path):
    table = synthetic_table(tmp_path, 4, size=64)
    learner = DeepKeypointLearner(table.skeleton, batch=4)
    labels = [KeypointLabels(ImageRef(name, lambda p=tmp_path / name: read_image(p)), xy)
              for name, xy in zip(table.images, table.xy)]
    calls = short_of_memory(learner.net, lambda x: len(x) <= 2)

    report = learner.fit(labels, 2)

    assert [batch for _, batch in calls] == [4, 2, 2]
    assert learner.batch == 2 and np.isfinite(report.loss)
    assert report.note == "The CPU ran out of memory: training goes on with 2 pictures at a time."

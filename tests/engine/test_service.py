"""The engine thread, driven by messages, with a real project and the real fast learner."""
import dataclasses
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.service import loop
from desktop.engine.service.loop import EngineService
from desktop.engine.service.messages import (Export, Exported, Failed, ImageRanking, LabelsChanged, ModelPublished,
                                             Pause, Predict, Prediction, Progress, ProposeQueries, Queries, Resume,
                                             SetLearner, Stopped)

SIZE = 128


def blob_project(folder, images=2):
    """Dark pictures with one bright square at (32..80, 32..80): class 1 inside, 0 outside."""
    folder.mkdir(parents=True)
    project = Project.create(folder / "project", classes=[("background", "#202020", "1"),
                                                          ("blob", "#ff0000", "2")])
    for i in range(images):
        pixels = np.full((SIZE, SIZE, 3), 20 + 5 * i, np.uint8)
        pixels[32:80, 32:80] = (230, 200, 40)
        Image.fromarray(pixels).save(folder / f"picture{i}.png")
        project.add_image(folder / f"picture{i}.png", SIZE, SIZE)
    return project


def label_blob(project, image_id):
    """Nine labels in one transaction, so the engine never trains on only some of them."""
    background, blob = project.classes()
    outside = [(5, 5, background.id), (120, 10, background.id), (10, 120, background.id),
               (110, 110, background.id), (100, 40, background.id)]
    inside = [(40, 40, blob.id), (70, 70, blob.id), (55, 45, blob.id), (45, 72, blob.id)]
    project.add_labels(image_id, outside + inside)


class Recorder:
    """Collects events from the engine thread and lets the test wait for one."""

    def __init__(self):
        self.events = []
        self._changed = threading.Condition()

    def __call__(self, event):
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events if predicate(e)]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                assert left > 0, f"no matching event; got {[type(e).__name__ for e in self.events]}"
                self._changed.wait(left)

    def of(self, kind):
        with self._changed:
            return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def service_factory():
    started = []

    def start(folder, **kwargs):
        recorder = Recorder()
        service = EngineService(folder, recorder, torch_threads=1, **kwargs)
        started.append(service)
        return service, recorder

    yield start
    for service in started:
        service.stop()
        assert not service.is_alive()


def test_labels_train_a_model_that_predicts_and_asks(tmp_path, service_factory):
    project = blob_project(tmp_path / "data")
    image_id = project.images()[0].id
    service, events = service_factory(project.folder)
    service.start()
    service.send(ProposeQueries(image_id, k=5))
    cold = events.wait_for(lambda e: isinstance(e, Queries))
    assert len(cold.points) == 5 and cold.version is None and all(p.candidates == () for p in cold.points)

    label_blob(project, image_id)
    service.send(LabelsChanged())
    service.send(Predict(image_id, generation=1))
    published = events.wait_for(lambda e: isinstance(e, ModelPublished))
    assert published.version >= 1 and published.label_count == 9
    shown = events.wait_for(lambda e: isinstance(e, Prediction) and e.version == published.version)
    assert shown.class_map.shape == (SIZE, SIZE) and shown.class_map.dtype == np.uint8
    assert shown.class_map[56, 56] == 1 and shown.class_map[110, 20] == 0
    assert shown.uncertainty.shape == (SIZE, SIZE) and shown.uncertainty.dtype == np.float32
    assert 0.5 <= shown.confidence[56, 56] <= 1.0

    # a new model replaces the cold-start queries with fresh ones that carry candidate classes
    # (of the first version, or of the second when the first was published before Predict came)
    fresh = events.wait_for(lambda e: isinstance(e, Queries) and e.version is not None)
    assert fresh.version in {m.version for m in events.of(ModelPublished)}
    assert fresh.points and {p.query_id for p in fresh.points}.isdisjoint({p.query_id for p in cold.points})
    assert all(len(p.candidates) == 2 and p.candidates[0][1] >= p.candidates[1][1] for p in fresh.points)
    assert {q.id for q in project.queries(image_id)} == {p.query_id for p in fresh.points}

    # idle: every readable image gets an uncertainty
    ranking = events.wait_for(lambda e: isinstance(e, ImageRanking))
    assert set(ranking.uncertainty) == {i.id for i in project.images()}

    service.stop()
    assert not service.is_alive() and isinstance(events.events[-1], Stopped)
    assert not events.of(Failed)


def test_reopening_restores_the_model_and_drops_stale_predictions(tmp_path, service_factory):
    project = blob_project(tmp_path / "data")
    image_id = project.images()[0].id
    label_blob(project, image_id)
    first, events = service_factory(project.folder)
    first.start()
    version = events.wait_for(lambda e: isinstance(e, ModelPublished)).version
    first.stop()
    version = project.latest_published_model().version  # a second round may have ended before the stop

    second, events = service_factory(project.folder)
    for generation in (1, 2, 3):  # queued before the thread runs: only the newest is served
        second.send(Predict(image_id, generation))
    second.start()
    restored = events.wait_for(lambda e: isinstance(e, ModelPublished))
    assert restored.version == version
    shown = events.wait_for(lambda e: isinstance(e, Prediction))
    assert shown.version == version and shown.class_map[56, 56] == 1
    time.sleep(0.3)
    assert [p.generation for p in events.of(Prediction)] == [3]
    # two predictions never share memory with each other
    second.send(Predict(image_id, 4))
    again = events.wait_for(lambda e: isinstance(e, Prediction) and e.generation == 4)
    assert not np.shares_memory(again.class_map, shown.class_map)
    assert not np.shares_memory(again.uncertainty, shown.uncertainty)


def test_pause_holds_training_until_resume(tmp_path, service_factory):
    project = blob_project(tmp_path / "data", images=1)
    image_id = project.images()[0].id
    service, events = service_factory(project.folder)
    service.send(Pause())
    service.start()
    events.wait_for(lambda e: getattr(e, "text", "") == "Ready")
    label_blob(project, image_id)
    service.send(LabelsChanged())
    time.sleep(1.0)
    assert not events.of(ModelPublished)
    service.send(Resume())
    events.wait_for(lambda e: isinstance(e, ModelPublished))


def test_a_missing_image_is_reported_and_the_engine_goes_on(tmp_path, service_factory):
    project = blob_project(tmp_path / "data")
    gone, kept = project.images()
    gone.path.unlink()
    service, events = service_factory(project.folder)
    service.start()
    service.send(ProposeQueries(gone.id, k=3))
    failed = events.wait_for(lambda e: isinstance(e, Failed))
    assert "picture0.png" in failed.message
    service.send(ProposeQueries(kept.id, k=3))
    assert len(events.wait_for(lambda e: isinstance(e, Queries)).points) == 3
    assert service.is_alive()


def test_export_writes_masks_and_model_from_the_engine_thread(tmp_path, service_factory):
    project = blob_project(tmp_path / "data")
    label_blob(project, project.images()[0].id)
    service, events = service_factory(project.folder)
    service.start()
    events.wait_for(lambda e: isinstance(e, ModelPublished))
    service.send(Export(masks_dir=tmp_path / "masks", model_dir=tmp_path / "model"))
    done = events.wait_for(lambda e: isinstance(e, Exported))
    assert "2 masks" in done.text
    mask = np.array(Image.open(tmp_path / "masks" / "picture1.png"))
    assert mask[56, 56] == 1 and mask[110, 20] == 0  # the second image, never labelled
    assert (tmp_path / "model" / "model.pt").stat().st_size > 0
    assert (tmp_path / "model" / "model_card.json").exists()


def test_an_absent_device_falls_back_to_the_cpu(tmp_path, service_factory):
    project = blob_project(tmp_path / "data", images=1)
    service, events = service_factory(project.folder)
    service.start()
    events.wait_for(lambda e: getattr(e, "text", "") == "Ready")
    service.send(SetLearner("fast", "mps"))  # no Apple GPU on a test machine
    failed = events.wait_for(lambda e: isinstance(e, Failed))
    assert "MPS" in failed.message and "CPU" in failed.message
    label_blob(project, project.images()[0].id)
    service.send(LabelsChanged())
    events.wait_for(lambda e: isinstance(e, ModelPublished))


def _first_model(tmp_path, service_factory):
    """A one-image project with blob labels, and a running service that published a model."""
    project = blob_project(tmp_path / "data", images=1)
    image_id = project.images()[0].id
    label_blob(project, image_id)
    service, events = service_factory(project.folder)
    service.start()
    version = events.wait_for(lambda e: isinstance(e, ModelPublished)).version
    return project, image_id, service, events, version


def test_labels_added_while_closed_are_trained_on_when_reopened(tmp_path, service_factory):
    project, image_id, first, events, _ = _first_model(tmp_path, service_factory)
    first.stop()
    # A change is trained twice, so the first service may have published a second version
    # before it stopped; the reopened one restores that, then trains on the new label.
    version = max(m.version for m in project.model_versions() if m.published)
    project.add_label(image_id, 60, 60, project.classes()[1].id)  # while no engine runs

    second, events = service_factory(project.folder)
    second.start()
    newer = events.wait_for(lambda e: isinstance(e, ModelPublished) and e.version > version)
    assert newer.label_count == 10


def test_a_damaged_model_file_is_reported_and_the_one_before_restored(tmp_path, service_factory):
    project, image_id, first, events, version = _first_model(tmp_path, service_factory)
    project.add_label(image_id, 60, 60, project.classes()[1].id)
    first.send(LabelsChanged())
    events.wait_for(lambda e: isinstance(e, ModelPublished) and e.version > version)
    first.stop()
    *_, before, newest = [m for m in project.model_versions() if m.published]
    (project.models_dir / newest.path).write_bytes(b"half a file")
    project.add_label(image_id, 20, 20, project.classes()[0].id)  # new to every saved model: training follows

    second, events = service_factory(project.folder)
    second.start()
    failed = events.wait_for(lambda e: isinstance(e, Failed))
    assert failed.message == (f"A saved model cannot be used: '{newest.path}' is damaged or incomplete. Using the "
                              f"saved version {before.version} instead; your labels are safe.")
    events.wait_for(lambda e: isinstance(e, ModelPublished))
    assert events.of(ModelPublished)[0].version == before.version
    events.wait_for(lambda e: isinstance(e, ModelPublished) and e.version > newest.version)  # and trains on


def test_what_the_learner_gave_up_is_shown_with_the_model_version(tmp_path, service_factory, monkeypatch):
    note = "The GPU ran out of memory: training goes on with 2 pictures at a time."
    train = SegmentationEngine.train
    monkeypatch.setattr(SegmentationEngine, "train", lambda self, steps, interrupted=None: dataclasses.replace(
        train(self, steps, interrupted), note=note))
    project = blob_project(tmp_path / "data", images=1)
    label_blob(project, project.images()[0].id)
    service, events = service_factory(project.folder)
    service.start()
    version = events.wait_for(lambda e: isinstance(e, ModelPublished)).version
    events.wait_for(lambda e: isinstance(e, Progress) and e.text == f"Model version {version}. {note}")


def test_a_round_stopped_by_newer_labels_publishes_nothing_and_keeps_the_model(tmp_path):
    project = blob_project(tmp_path / "data", images=1)
    label_blob(project, project.images()[0].id)
    engine = SegmentationEngine(project, save_models=False)
    asked = []
    first = engine.train(150, lambda: asked.append(1) or True)
    assert first.published and not asked  # with no model yet, a round is never stopped: there would be none
    weights = {k: v.clone() for k, v in engine.learner.head.state_dict().items()}

    def after_two_questions():
        asked.append(1)
        return len(asked) > 2

    stopped = engine.train(150, after_two_questions)
    assert not stopped.published and stopped.version is None and len(asked) == 3
    assert engine.version == first.version
    assert all(torch.equal(v, engine.learner.head.state_dict()[k]) for k, v in weights.items())
    assert engine.train(150, lambda: False).published  # not stopped: a round as before
    project.close()


def test_a_click_does_not_wait_for_the_follow_up_round(tmp_path, service_factory, monkeypatch):
    """A change is trained twice (``ROUNDS_AFTER_CHANGE``); newer labels stop the second round,
    so a click trains at once instead of after a round made stale by it."""
    monkeypatch.setitem(loop.STEPS, "fast", 10_000)  # rounds of seconds: the click lands inside one
    project, image_id, service, events, version = _first_model(tmp_path, service_factory)
    revision = project.label_revision()
    time.sleep(0.3)  # the follow-up round on the first labels is under way
    project.add_label(image_id, 60, 60, project.classes()[1].id)
    service.send(LabelsChanged())
    newer = events.wait_for(lambda e: isinstance(e, ModelPublished) and e.version > version, timeout=120)
    assert newer.label_count == 10 and newer.label_revision > revision  # the follow-up published nothing
    assert [m.label_revision for m in events.of(ModelPublished)] == [revision, newer.label_revision]
    started = time.monotonic()
    service.stop()  # in the follow-up round of the new label: closing does not wait for it
    assert not service.is_alive() and time.monotonic() - started < 2.0


def test_the_engine_thread_reads_and_writes_denormals_as_zero_and_other_threads_are_untouched():
    """A head computing with denormals ran many times slower (three slow clicks in a row on a
    4096 x 4096 image in ``bench ui``); the flag is set on the engine's thread only."""
    tiny = torch.tensor([1e-39])  # below float32's smallest normal number (1.2e-38)
    seen = {}

    def engine_thread():
        loop.set_up_engine_thread(1)
        seen["product"] = float(tiny * 1.0)
        seen["threads"] = torch.get_num_threads()

    thread = threading.Thread(target=engine_thread)
    thread.start()
    thread.join()
    if not torch.set_flush_denormal(False):  # False: this processor has no such mode
        pytest.skip("this processor cannot flush denormals")
    assert seen == {"product": 0.0, "threads": 1}
    assert float(tiny * 1.0) > 0  # this thread computes them as before

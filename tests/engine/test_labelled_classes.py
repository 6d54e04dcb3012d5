"""A class nobody has labelled gets no probability: not in what the app paints, not in exported
masks, not in ``pointillist predict``; and a model of one labelled class predicts nothing."""
import json

import numpy as np
import pytest
from PIL import Image

from desktop.engine.errors import ProjectError
from desktop.engine.images.slides import open_image_source
from desktop.engine.images.synthetic_slide import generate_ome_tiff
from desktop.engine.learning.task_engine import is_validation
from desktop.engine.predict.model_dir import write_model_dir
from desktop.engine.predict.predictor import Predictor
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.export import export_masks, export_model, scripted_predict
from desktop.engine.segmentation.labelled_classes import restrict
from desktop.engine.service.loop import EngineService
from desktop.engine.service.messages import (LabelsChanged, ModelPublished, Predict, Prediction, PredictView, Queries,
                                             TilePrediction)
from tests.engine.helpers import one_thread  # noqa: F401  (one torch thread for this module)
from tests.engine.test_service import Recorder, service_factory  # noqa: F401  (the engine-thread fixture)
from tests.slide_clicks import ten_clicks

SIZE = 96
UNLABELLED = 2


def three_class_project(folder):
    """Dark pictures with a bright square; classes background, blob and debris, nobody labels
    debris. Labels: background outside the square, blob inside."""
    folder.mkdir(parents=True)
    project = Project.create(folder / "project", classes=[("background", "#202020", "1"), ("blob", "#ff0000", "2"),
                                                          ("debris", "#00ff00", "3")])
    for i in range(2):
        pixels = np.full((SIZE, SIZE, 3), 20 + 5 * i, np.uint8)
        pixels[24:64, 24:64] = (230, 200, 40)
        Image.fromarray(pixels).save(folder / f"picture{i}.png")
        project.add_image(folder / f"picture{i}.png", SIZE, SIZE)
    return project


def label(project, image_id, classes=(0, 1)):
    by_index = {c.index: c.id for c in project.classes()}
    points = {0: [(5, 5), (90, 8), (8, 90), (85, 85), (80, 40), (40, 85)],
              1: [(30, 30), (55, 55), (44, 35), (35, 58), (50, 30), (60, 44)]}
    project.add_labels(image_id, [(x, y, by_index[c]) for c in classes for x, y in points[c]])


def test_restrict_zeroes_other_classes_and_renormalises():
    probs = np.array([[0.2, 0.0], [0.3, 0.0], [0.5, 1.0]], np.float32)[:, :, None]  # (3, 2, 1)
    out = restrict(probs, [0, 1])
    assert np.allclose(out[:, 0, 0], [0.4, 0.6, 0.0])
    assert np.allclose(out[:, 1, 0], [0.5, 0.5, 0.0])  # no mass left on the kept classes: shared evenly
    assert out.dtype == np.float32


def test_an_unlabelled_class_is_never_predicted_painted_or_exported(tmp_path):
    project = three_class_project(tmp_path / "p")
    for info in project.images():
        label(project, info.id)
    engine = SegmentationEngine(project)
    assert engine.train(60).published
    assert engine.model.classes == (0, 1) and engine.model.ready
    image_id = project.images()[0].id
    probs = engine.predict(image_id)
    assert probs.shape[0] == 3
    assert np.all(probs[UNLABELLED] == 0)
    assert np.allclose(probs.sum(0), 1, atol=1e-5)
    painted = probs.argmax(0)
    assert set(np.unique(painted)) == {0, 1}

    masks = export_masks(engine, tmp_path / "masks")
    for path in masks.written:
        assert UNLABELLED not in np.unique(np.array(Image.open(path)))
    written = np.array(Image.open(masks.written[0]))
    assert np.array_equal(written, painted)

    card = write_model_dir(engine, None, tmp_path / "model")
    assert card.labelled_classes == (0, 1)
    predictor = Predictor.load(tmp_path / "model", device="cpu")
    picture = np.array(Image.open(tmp_path / "p" / "picture0.png").convert("RGB"))
    assert np.array_equal(predictor.predict_picture(picture).argmax(0), painted)

    card_file = tmp_path / "model" / "model_card.json"  # a hand-edited card is refused in words
    for bad in ([1], [1, 7], "ab", None):
        text = json.loads(card_file.read_text())
        text["labelled_classes"] = bad
        card_file.write_text(json.dumps(text))
        with pytest.raises(ProjectError, match="model_card.json in .* (is damaged|is incomplete or damaged)"):
            Predictor.load(tmp_path / "model", device="cpu")

    export_model(engine, tmp_path / "torchscript")
    assert json.loads((tmp_path / "torchscript" / "model_card.json").read_text())["labelled_classes"] == [0, 1]
    scripted = scripted_predict(tmp_path / "torchscript" / "model.pt", picture)
    assert np.all(scripted[UNLABELLED] == 0)
    assert np.mean(scripted.argmax(0) == painted) > 0.99


def test_a_model_of_one_class_predicts_nothing_until_a_second_is_labelled(tmp_path):
    project = three_class_project(tmp_path / "p")
    image_id = project.images()[0].id
    label(project, image_id, classes=(0,))
    engine = SegmentationEngine(project)
    assert engine.train(30).published and engine.learner.trained
    assert engine.model.classes == (0,) and not engine.model.ready
    with pytest.raises(ProjectError, match="one class only .background.: label a second class"):
        export_masks(engine, tmp_path / "masks")
    with pytest.raises(ProjectError, match="label a second class"):
        write_model_dir(engine, None, tmp_path / "model")
    assert not (tmp_path / "masks").exists() and not (tmp_path / "model").exists()
    points, _ = engine.propose_queries(image_id, 4, "margin")  # asked from the features, as with no model
    assert len(points) == 4

    label(project, image_id, classes=(1,))
    assert engine.train(60).published
    assert engine.model.classes == (0, 1)
    assert set(np.unique(engine.predict(image_id).argmax(0))) == {0, 1}


def test_the_engine_thread_clears_the_overlay_of_a_model_of_one_class(tmp_path, service_factory):  # noqa: F811
    project = three_class_project(tmp_path / "p")
    image_id = project.images()[0].id
    label(project, image_id, classes=(0,))
    service, recorder = service_factory(project.folder)
    service.start()
    service.send(Predict(image_id, 1))
    recorder.wait_for(lambda e: isinstance(e, ModelPublished))
    service.send(Predict(image_id, 2))
    shown = recorder.wait_for(lambda e: isinstance(e, Prediction) and e.generation == 2)
    assert np.all(shown.class_map == 255) and np.all(np.isnan(shown.uncertainty))  # nothing painted

    label(project, image_id, classes=(1,))
    service.send(LabelsChanged())
    published = recorder.wait_for(lambda e: isinstance(e, ModelPublished) and e.label_count == 12)
    ids = project.label_arrays(image_id)[0]
    assert published.validation_count == int(is_validation(ids, 0.1).sum())  # the held-back labels, counted
    service.send(Predict(image_id, 3))
    shown = recorder.wait_for(lambda e: isinstance(e, Prediction) and e.generation == 3)
    assert shown.version >= published.version
    assert set(np.unique(shown.class_map)) == {0, 1}
    asked = recorder.wait_for(lambda e: isinstance(e, Queries) and e.version == shown.version and e.points)
    assert all({c for c, _ in p.candidates} == {0, 1} for p in asked.points)  # debris is never "likeliest"


def test_a_slide_paints_and_proposes_only_labelled_classes_also_for_queries_asked_before(tmp_path):
    """Queries asked before the model (none had likeliest classes) get them once it is in."""
    path = tmp_path / "slide.ome.tif"
    levels = generate_ome_tiff(path, 2048)
    project = Project.create(tmp_path / "p", classes=[("glass", "#f0f0f0", "1"), ("tissue", "#d02020", "2"),
                                                      ("debris", "#00ff00", "3")])
    image_id = project.add_image(path, 2048, 2048, levels)
    with open_image_source(path) as source:
        clicks = ten_clicks(source)
    glass, tissue, _ = project.classes()
    project.add_labels(image_id, [(x, y, (glass, tissue)[c].id) for x, y, c in clicks])
    asked = project.add_queries(image_id, np.array([[1024.0, 1024.0], [300.0, 1500.0]]), "random")
    project.close()
    events = Recorder()
    service = EngineService(tmp_path / "p", events, torch_threads=1)
    service.start()
    try:
        service.send(PredictView(image_id, 1, (0.0, 0.0, 2048.0, 2048.0)))
        service.send(LabelsChanged())
        published = events.wait_for(lambda e: isinstance(e, ModelPublished), 120)
        queries = events.wait_for(lambda e: isinstance(e, Queries) and e.version is not None, 120)
        tiles = events.of(TilePrediction)
    finally:
        service.stop()
    assert queries.image_id == image_id and queries.version >= published.version
    assert [p.query_id for p in queries.points] == asked
    assert all(p.candidates and {c for c, _ in p.candidates} <= {0, 1} for p in queries.points)
    assert tiles and all(set(np.unique(t.class_map)) <= {0, 1} for t in tiles)


def test_a_slide_with_one_labelled_class_clears_its_tiles(tmp_path):
    path = tmp_path / "slide.ome.tif"
    levels = generate_ome_tiff(path, 2048)
    project = Project.create(tmp_path / "p", classes=[("glass", "#f0f0f0", "1"), ("tissue", "#d02020", "2")])
    image_id = project.add_image(path, 2048, 2048, levels)
    with open_image_source(path) as source:
        clicks = [(x, y, c) for x, y, c in ten_clicks(source) if c == 1]  # tissue only
    tissue = project.classes()[1]
    project.add_labels(image_id, [(x, y, tissue.id) for x, y, _ in clicks])
    project.close()
    events = Recorder()
    service = EngineService(tmp_path / "p", events, torch_threads=1)
    service.start()
    try:
        service.send(PredictView(image_id, 1, (0.0, 0.0, 2048.0, 2048.0)))
        service.send(LabelsChanged())
        published = events.wait_for(lambda e: isinstance(e, ModelPublished), 120)
        tile = events.wait_for(lambda e: isinstance(e, TilePrediction) and e.version == published.version, 60)
    finally:
        service.stop()
    assert np.all(tile.class_map == 255) and np.all(tile.uncertainty == 0)  # transparent: nothing painted


def test_the_only_label_of_a_class_is_trained_on_not_held_back(tmp_path):
    """Three background clicks, then one on the blob: that label's id is one the hash holds back
    (it happened on the demo), and the model of the background alone painted nothing."""
    project = three_class_project(tmp_path / "p")
    image_id = project.images()[0].id
    by_index = {c.index: c.id for c in project.classes()}
    project.add_labels(image_id, [(5, 5, by_index[0]), (90, 8, by_index[0]), (8, 90, by_index[0])])
    project.add_label(image_id, 40, 40, by_index[1])
    ids, _, cls = project.label_arrays(image_id)
    engine = SegmentationEngine(project, validation_fraction=0.2, save_models=False)
    assert is_validation(ids, 0.2)[cls == 1].all()  # the blob's only label is one the hash holds back
    report = engine.train(50)
    assert report.published and report.train_labels == 4 and engine.model.classes == (0, 1) and engine.model.ready
    project.add_label(image_id, 55, 55, by_index[1])  # a second blob label: the first is held back again
    report = engine.train(50)
    assert report.train_labels == 4 and report.validation_labels == 1 and engine.model.classes == (0, 1)
    project.close()

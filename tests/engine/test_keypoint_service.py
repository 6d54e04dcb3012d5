"""The engine thread on a keypoint project: the same messages, keypoint results."""
from desktop.engine.service.messages import (AddVideo, Failed, ImageRanking, KeypointPrediction, KeypointQuery,
                                             LabelsChanged, ModelPublished, Predict, ProposeQueries, Queries,
                                             VideoAdded)

from .test_keypoint_engine import keypoint_project
from .test_service import service_factory  # noqa: F401 (a fixture)
from .test_video import write_video


def test_keypoint_project_trains_in_the_background_predicts_and_asks(tmp_path, service_factory):  # noqa: F811
    project, ids, truth = keypoint_project(tmp_path, n_images=5, labelled=0)
    service, events = service_factory(project.folder)
    service.start()
    service.send(ProposeQueries(ids[0], k=8, strategy="margin"))  # a segmentation strategy: refused, said
    refused = events.wait_for(lambda e: isinstance(e, Failed))
    assert refused.message.startswith("Unknown keypoint strategy 'margin': choose one of confidence, entropy")
    service.send(ProposeQueries(ids[0], k=8))  # no strategy named: the task's own default, 'confidence'
    cold = events.wait_for(lambda e: isinstance(e, Queries))
    assert [(p.keypoint, p.confidence) for p in cold.points] == [(0, None), (1, None), (2, None)]
    assert all(isinstance(p, KeypointQuery) for p in cold.points)

    entries = [(ids[i], k, *truth.xy[i, k], "visible") for i in range(3) for k in range(3)]
    project.set_keypoint_labels(entries)
    service.send(LabelsChanged())
    service.send(Predict(ids[3], generation=1))
    published = events.wait_for(lambda e: isinstance(e, ModelPublished))
    assert published.label_count == 9
    shown = events.wait_for(lambda e: isinstance(e, KeypointPrediction) and e.version == published.version)
    assert shown.xy.shape == (3, 2) and shown.confidence.shape == shown.uncertainty.shape == (3,)
    fresh = events.wait_for(lambda e: isinstance(e, Queries) and e.image_id == ids[3]
                            and e.version == published.version)
    assert sorted(p.keypoint for p in fresh.points) == [0, 1, 2]
    assert all(p.confidence is not None for p in fresh.points)
    ranking = events.wait_for(lambda e: isinstance(e, ImageRanking))
    assert ranking.uncertainty[ids[0]] == 0.0 and ranking.uncertainty[ids[4]] > 0.0

    video = write_video(tmp_path / "clip.avi", [(30, 30, 30)] * 12)
    service.send(AddVideo(video, frames=4))
    added = events.wait_for(lambda e: isinstance(e, VideoAdded))
    assert len(added.image_ids) == 4 and [project.image(i).frame for i in added.image_ids] == [1, 4, 7, 10]
    assert events.of(Failed) == [refused]

"""The labelling session without any window: what a key press gathers and what it stores."""
import numpy as np

from desktop.engine.project.store import Project
from desktop.engine.service.messages import QueryPoint
from desktop.gui.session import LabellingSession


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_an_answer_goes_to_the_query_on_screen_even_after_the_engine_replaced_it(blob_project):
    project = Project.open(blob_project)
    image_id = project.images()[0].id
    first = project.add_queries(image_id, np.array([[10, 20], [30, 40]]), "margin")
    clock = Clock()
    session = LabellingSession(project, clock=clock)
    session.set_image(image_id)
    assert session.current.query_id == first[0]

    clock.now += 2.5  # the expert looks at it ...
    project.close_open_queries(image_id)  # ... while a new model replaces the queries
    fresh = project.add_queries(image_id, np.array([[50, 60]]), "margin")
    session.set_queries(image_id, [QueryPoint(fresh[0], 60, 50, ((1, 0.8), (0, 0.2)))])
    assert session.current.query_id == first[0]
    assert [q.query_id for q in session.queries] == [first[0], fresh[0]]

    blob = session.class_for_key("2")
    label_id = session.answer(blob)
    (label,) = project.labels(image_id)
    assert (label.id, label.x, label.y, label.query_id, label.seconds) == (label_id, 20, 10, first[0], 2.5)
    assert {q.id: q.status for q in project.queries(image_id, status=None)}[first[0]] == "answered"
    assert session.current.query_id == fresh[0] and session.current.candidates[0] == (1, 0.8)
    project.close()


def test_keys_map_to_classes_by_their_own_key_then_by_position(blob_project):
    with Project.create(blob_project.parent / "lettered",
                        classes=[("tumour", "#ff0000", "t"), ("stroma", "#00ff00", None)]) as project:
        session = LabellingSession(project)
        assert session.class_for_key("T").name == "tumour"
        assert session.class_for_key("2").name == "stroma"
        assert session.class_for_key("3") is None and session.class_for_key("x") is None

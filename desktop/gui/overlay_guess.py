"""What "Likeliest" says of a query that has no classes from the model in use."""
from __future__ import annotations

from dataclasses import replace

from desktop.engine.service.messages import Prediction, QueryPoint


def with_overlay_guess(query: QueryPoint | None, painted: list[Prediction]) -> QueryPoint | None:
    """A query asked before the model in use came (it stays on screen until answered) has no
    classes from that model: it takes the class the painted overlay shows at its pixel (the first
    of ``painted`` that covers it: a large image's view, then the whole image), so that the panel
    and the overlay agree. A model of one class painted nothing: no guess then."""
    if query is None or query.candidates:
        return query
    for n, prediction in enumerate(painted):
        rows, cols = prediction.class_map.shape
        y = (round(query.y) - prediction.origin[0]) // prediction.stride
        x = (round(query.x) - prediction.origin[1]) // prediction.stride
        if not (0 <= y < rows and 0 <= x < cols):
            if n < len(painted) - 1:
                continue  # a view part that does not reach the query
            y, x = min(max(y, 0), rows - 1), min(max(x, 0), cols - 1)  # the whole image's edge
        probability = float(prediction.confidence[y, x])
        if not probability > 0:
            return query
        return replace(query, candidates=((int(prediction.class_map[y, x]), probability),))
    return query

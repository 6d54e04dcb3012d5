"""What "Likeliest" says of a query that has no classes from the model in use."""
from __future__ import annotations

from dataclasses import replace

from desktop.engine.service.messages import Prediction, QueryPoint


def with_overlay_guess(query: QueryPoint | None, painted: Prediction | None) -> QueryPoint | None:
    """A query asked before the model in use came (it stays on screen until answered) has no
    classes from that model: it takes the class the painted overlay shows at its pixel, so that
    the panel and the overlay agree. A model of one class painted nothing: no guess then."""
    if query is None or query.candidates or painted is None:
        return query
    rows, cols = painted.class_map.shape
    y, x = min(max(round(query.y), 0), rows - 1), min(max(round(query.x), 0), cols - 1)
    probability = float(painted.confidence[y, x])
    if not probability > 0:
        return query
    return replace(query, candidates=((int(painted.class_map[y, x]), probability),))

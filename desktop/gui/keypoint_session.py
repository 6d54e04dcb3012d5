"""Keypoint labelling with no widget: the image, the model's proposals, the keypoint being
asked, and the undo stack.

As in ``session.py``, each action gathers what it needs (the keypoint asked, its proposal, the
query it answers, how long it was shown) and pushes a ``SetKeypoints`` command that does it.

- query mode: the least certain unlabelled keypoint is asked. A click puts it where it truly
  is, ``accept`` takes the proposal, ``mark('occluded')`` keeps the proposed position but says
  it is hidden, ``mark('absent')`` says it is not in the image.
- free mode: a click places the active keypoint, and the next unlabelled one becomes active.
- in both: any keypoint can be dragged; ``accept_all`` takes every remaining proposal.

The asked keypoint's proposal stays where it was shown until it is answered: a new model's
queries or prediction may arrive while the expert looks at it, and Enter (or V) must take the
position the ring showed, not one that moved under the eye.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from desktop.engine.keypoints.strategies import confidence_from_score
from desktop.engine.project.store import Project
from desktop.engine.service.messages import KeypointQuery

from .keypoint_commands import SetKeypoints

MODES = ("query", "free")


class KeypointSession(QObject):
    labelsChanged = Signal(int)  # image id whose labels changed
    queryChanged = Signal(object)  # the KeypointQuery now asked, or None
    proposalsChanged = Signal()  # new predicted positions for the image
    imageDone = Signal(int)  # every keypoint of the image is labelled: time to move on
    modeChanged = Signal(str)
    activeChanged = Signal(int)  # the keypoint a free click places
    imageNeeded = Signal(int)  # an undo or redo touches another image: show it (calls set_image)
    storeFailed = Signal(str)  # an edit the project refused (disk full...), in words for the user

    batch = 0  # the ``k`` of ProposeQueries: unused, every unlabelled keypoint is asked

    def __init__(self, project: Project, clock: Callable[[], float] = time.monotonic,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.project = project
        self.skeleton = project.skeleton()
        self.clock = clock
        self.undo_stack = QUndoStack(self)
        self.mode = "query"
        self.active = 0
        self.image_id: int | None = None
        self.queries: list[KeypointQuery] = []
        self.current: KeypointQuery | None = None
        self.predicted: tuple[np.ndarray, np.ndarray] | None = None  # (xy (K, 2), confidence (K,))
        self.shown_at = 0.0
        self._known: dict[int, KeypointQuery] = {}  # query id -> as the engine last sent it

    # ----- state -----------------------------------------------------------------------------
    def set_image(self, image_id: int) -> None:
        self.image_id = image_id
        self.predicted = None
        self._known.clear()
        self.current = None
        self._sync_queries()
        self.set_active(self._first_unlabelled(0))

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.modeChanged.emit(mode)

    def set_active(self, keypoint: int) -> None:
        self.active = keypoint
        self.activeChanged.emit(keypoint)

    def set_prediction(self, image_id: int, xy: np.ndarray, confidence: np.ndarray) -> None:
        if image_id == self.image_id:
            self.predicted = (np.asarray(xy, np.float64), np.asarray(confidence, np.float64))
            self.proposalsChanged.emit()

    def set_queries(self, image_id: int, points: list[KeypointQuery]) -> None:
        if image_id == self.image_id:
            self._known.update({p.query_id: p for p in points})
            self._sync_queries()

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(xy (K, 2), visibility (K,))`` of the image; '' where unlabelled."""
        return self.project.keypoint_arrays(self.image_id)

    def proposal(self, keypoint: int) -> tuple[float, float, float] | None:
        """``(x, y, confidence)`` the model proposes for a keypoint: where its query asked (the
        asked keypoint's where it was shown), else the newest prediction; None before there is a
        model, or while the confidence of a query read from the project waits for a prediction."""
        queried = next((q for q in (self.current, *self.queries)
                        if q is not None and q.keypoint == keypoint and q.score is not None), None)
        if queried is not None:
            confidence = queried.confidence
            if confidence is None and self.predicted is not None:
                confidence = float(self.predicted[1][keypoint])
            return None if confidence is None else (queried.x, queried.y, confidence)
        if self.predicted is not None:
            (x, y), confidence = self.predicted[0][keypoint], self.predicted[1][keypoint]
            return float(x), float(y), float(confidence)
        return None

    def proposals(self) -> dict[int, tuple[float, float, float]]:
        """The proposal of every unlabelled keypoint that has one."""
        _, visibility = self.labels()
        out = {}
        for k in np.flatnonzero(visibility == ""):
            p = self.proposal(int(k))
            if p is not None:
                out[int(k)] = p
        return out

    # ----- actions ---------------------------------------------------------------------------
    def click(self, x: float, y: float) -> bool:
        """Query mode: the asked keypoint is here. Free mode: the active keypoint is here."""
        if self.image_id is None:
            return False
        if self.mode == "query" and self.current is not None:
            return self._set([(self.current.keypoint, x, y, "visible")], "place keypoint")
        if self.mode == "free" and len(self.skeleton):
            placed = self._set([(self.active, x, y, "visible")], "place keypoint")
            self.set_active(self._first_unlabelled(self.active + 1))
            return placed
        return False

    def accept(self) -> bool:
        """The asked keypoint is where the model proposes it, as the ring shows (Enter)."""
        p = self._asked_position()
        return p is not None and self._set([(self.current.keypoint, *p, "visible")], "accept proposal")

    def mark(self, visibility: str) -> bool:
        """The asked keypoint is ``occluded`` (at its proposal: known, not seen; V) or ``absent`` (A)."""
        if self.current is None:
            return False
        k = self.current.keypoint
        if visibility == "absent":
            return self._set([(k, 0.0, 0.0, "absent")], "mark absent")
        p = self._asked_position()
        return p is not None and self._set([(k, *p, visibility)], f"mark {visibility}")

    def _asked_position(self) -> tuple[float, float] | None:
        """Where the ring of the asked keypoint is: its query's position; None when nothing is
        proposed (asked before there was a model: the expert clicks it)."""
        q = self.current
        return (q.x, q.y) if q is not None and q.score is not None else None

    def drag(self, keypoint: int, x: float, y: float) -> bool:
        """A keypoint (label or proposal) was dragged here; an occluded one stays occluded."""
        _, visibility = self.labels()
        kept = "occluded" if visibility[keypoint] == "occluded" else "visible"
        return self._set([(keypoint, x, y, kept)], "move keypoint")

    def accept_all(self) -> bool:
        """Every remaining proposal of the image, as it is (Shift+Enter): one undo step."""
        entries = [(k, x, y, "visible") for k, (x, y, _) in sorted(self.proposals().items())]
        return bool(entries) and self._set(entries, f"accept {len(entries)} proposals")

    def _set(self, entries: list[tuple[int, float, float, str]], text: str) -> bool:
        open_by_keypoint = {q.keypoint: q.query_id for q in self.queries}
        seconds = self.clock() - self.shown_at
        unfinished = bool((self.labels()[1] == "").any())
        command = SetKeypoints(self.project, self.image_id, entries, self._after,
                               query_ids=[open_by_keypoint.get(e[0]) for e in entries],
                               seconds=[seconds if e[0] == getattr(self.current, "keypoint", None) else None
                                        for e in entries], text=text)
        self._push(command)
        if self.mode == "query" and unfinished and not (self.labels()[1] == "").any():
            self.imageDone.emit(self.image_id)  # this edit finished it: a correction on a finished image stays
        return True

    def _push(self, command) -> None:
        """Do an edit as an undo step; a write the project refuses is reported, not stacked."""
        command.failed = self.storeFailed.emit
        self.undo_stack.push(command)

    # ----- keeping in step with the database -------------------------------------------------
    def _after(self, command: SetKeypoints) -> None:
        if command.image_id != self.image_id:
            self.imageNeeded.emit(command.image_id)
        self.labelsChanged.emit(command.image_id)
        self._sync_queries(prefer=command.keypoints[0])  # after an undo: ask the keypoint again

    def _stored_query(self, q) -> KeypointQuery:
        """A query read from the project before the engine sent it: the model's confidence is
        what its score says of it, else the latest prediction's (a score is the strategy's, in its
        own unit: only ``confidence``'s says how sure the model is)."""
        if q.score is None:
            return KeypointQuery(q.id, q.keypoint, q.x, q.y, None)
        confidence = confidence_from_score(q.strategy, q.score)
        if confidence is None and self.predicted is not None:
            confidence = float(self.predicted[1][q.keypoint])
        return KeypointQuery(q.id, q.keypoint, q.x, q.y, confidence, q.strategy, q.score)

    def _sync_queries(self, prefer: int | None = None) -> None:
        """Open queries of unlabelled keypoints, one per keypoint (the newest), least certain
        first; the keypoint asked stays asked while it is open, else ``prefer``, else the first."""
        if self.image_id is None:
            return
        _, visibility = self.labels()
        newest: dict[int, KeypointQuery] = {}
        for q in self.project.queries(self.image_id):
            if q.keypoint is not None and visibility[q.keypoint] == "":
                newest[q.keypoint] = self._known.get(q.id) or self._stored_query(q)
        self.queries = sorted(newest.values(), key=lambda q: q.query_id)  # the engine stores them in order
        by_keypoint = {q.keypoint: q for q in self.queries}
        asked = self.current.keypoint if self.current is not None else None
        chosen = by_keypoint.get(prefer) if prefer is not None and visibility[prefer] == "" else None
        chosen = chosen or by_keypoint.get(asked) or (self.queries[0] if self.queries else None)
        shown = self.current
        if chosen is not None and shown is not None and shown.score is not None and chosen.keypoint == shown.keypoint:
            # asked and shown: a newer query of the same keypoint (a new model's) keeps the place shown
            chosen = dataclasses.replace(chosen, x=shown.x, y=shown.y,
                                         confidence=shown.confidence if shown.confidence is not None
                                         else chosen.confidence)
        if chosen is None or self.current is None or chosen.keypoint != self.current.keypoint:
            self.shown_at = self.clock()
        self.current = chosen
        self.queryChanged.emit(chosen)

    def _first_unlabelled(self, start: int) -> int:
        """The first unlabelled keypoint from ``start`` on in skeleton order (wrapping); ``start``
        itself (modulo) when every keypoint is labelled."""
        n = len(self.skeleton)
        if self.image_id is None or not n:
            return 0
        _, visibility = self.labels()
        return next(((start + i) % n for i in range(n) if visibility[(start + i) % n] == ""), start % n)

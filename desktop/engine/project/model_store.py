"""The methods of ``Project`` (``store.py``) for model versions: reserving, publishing and listing
them, kept in a module of their own; they use the project's connection and its transactions as
the class's own methods do."""
from __future__ import annotations

import time

from desktop.engine.errors import ProjectError
from desktop.engine.project.records import ModelVersion


class ModelStore:
    def add_model_version(self, learner: str, label_count: int, path: str | None = None,
                          validation_count: int = 0, validation_accuracy: float | None = None,
                          published: bool = True) -> int:
        """Record a version whose file, if any, is already named (a refused round has none)."""
        with self._transaction():
            return self._insert_model_version(learner, label_count, lambda version: path, validation_count,
                                              validation_accuracy, published)

    def reserve_model_version(self, learner: str, label_count: int, validation_count: int = 0,
                              validation_accuracy: float | None = None) -> tuple[int, str]:
        """Claim the next version number and its file name, ``LEARNER-vN.pt``, in one transaction,
        unpublished until ``publish_model_version``. Two engines on one project (two windows)
        can never claim the same number, so a file always holds the weights of the version that
        names it. A crash before publishing leaves an unpublished row, which nothing loads."""
        with self._transaction():
            version = self._insert_model_version(learner, label_count, lambda v: f"{learner}-v{v}.pt",
                                                 validation_count, validation_accuracy, published=False)
            path = self._conn.execute("SELECT path FROM model_versions WHERE version = ?", (version,)).fetchone()[0]
        return version, path

    def publish_model_version(self, version: int, saved: bool) -> None:
        """Publish a reserved version; ``saved`` says whether its file was written (when the disk
        refused it, the version is still the one in use, but has no file to reload)."""
        with self._transaction():
            self._conn.execute("UPDATE model_versions SET published = 1, path = CASE WHEN ? THEN path END "
                               "WHERE version = ?", (int(saved), version))

    def forget_model_files(self, versions: list[int]) -> None:
        """Record that these versions' files were deleted (by the app's clean-up)."""
        with self._transaction():
            self._conn.executemany("UPDATE model_versions SET path = NULL WHERE version = ?",
                                   [(v,) for v in versions])

    def _insert_model_version(self, learner, label_count, path_of, validation_count, validation_accuracy,
                              published) -> int:
        version = self._conn.execute("SELECT COALESCE(MAX(version) + 1, 1) FROM model_versions").fetchone()[0]
        self._conn.execute(
            "INSERT INTO model_versions(version, learner, path, created_at, label_count, validation_count, "
            "validation_accuracy, published) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (version, learner, path_of(version), time.time(), label_count, validation_count,
             validation_accuracy, int(published)))
        return version

    _MODEL_COLUMNS = ("version, learner, path, created_at, label_count, validation_count, validation_accuracy, "
                      "published")

    def model_versions(self) -> list[ModelVersion]:
        rows = self._conn.execute(f"SELECT {self._MODEL_COLUMNS} FROM model_versions ORDER BY version").fetchall()
        return [ModelVersion(*r[:7], bool(r[7])) for r in rows]

    def model_version(self, version: int) -> ModelVersion:
        row = self._conn.execute(f"SELECT {self._MODEL_COLUMNS} FROM model_versions WHERE version = ?",
                                 (version,)).fetchone()
        if row is None:
            raise ProjectError(f"No model version {version} in this project.")
        return ModelVersion(*row[:7], bool(row[7]))

    def latest_published_model(self) -> ModelVersion | None:
        published = [m for m in self.model_versions() if m.published]
        return published[-1] if published else None

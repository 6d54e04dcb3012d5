"""A run of ``pointillist predict``: inputs in, masks and a summary out, resumable.

The work is cut into jobs, one per input (``PredictJob``: plain strings, ints and tuples, so it
pickles to any worker), and ``run_job`` does one job wherever it runs: it loads the model
folder (once per process), predicts, writes the input's outputs into the output folder (which
workers must see too) and returns a ``JobResult``. The main process (``run_predict``) plans
the jobs, leaves out what the manifest says is finished, hands the rest to an executor (this
process by default, or a Dask cluster: ``on_workers``), and as each result comes, records
it in the manifest and the summary and reports progress.

One slide may also be spread over several workers: ``tile_jobs`` cuts its job into jobs for a
few tiles each, ``run_job`` returns those tiles' class maps, and ``finish_slide`` puts them
together and writes the outputs, as ``run_job`` does for a whole slide.
"""
from __future__ import annotations

import dataclasses
import itertools
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from filelock import FileLock, Timeout

from desktop.engine.errors import ImageReadError, PointillistError
from desktop.engine.images.pictures import read_image
from desktop.engine.predict.inputs import collect_inputs, input_names
from desktop.engine.predict.manifest import Manifest, file_state
from desktop.engine.predict.model_dir import ModelCard, read_model_card
from desktop.engine.predict.outputs import (ENDINGS, FORMATS, class_areas, planned_outputs, write_picture_outputs,
                                            write_slide_outputs)
from desktop.engine.predict.predictor import Predictor, SlideLayout, slide_layout, slide_tiles, stitch
from desktop.engine.predict.progress import BarProgress, LineProgress, progress_for
from desktop.engine.predict.summary import SUMMARY_FILE, write_summary
from desktop.engine.project.atomic import remove_stale_temporaries
from desktop.engine.segmentation.slide_learning import class_map

LOCK_FILE = ".predict.lock"


@dataclass(frozen=True)
class PredictJob:
    """One input to predict (or, with ``tiles``, some tiles of one slide)."""

    input_path: str
    name: str  # of its outputs, unique in the run (inputs.input_names)
    kind: str  # 'image' or 'slide'
    out_dir: str
    model_dir: str
    formats: tuple[str, ...]
    device: str = "auto"
    tiles: tuple[tuple[int, int], ...] | None = None  # (col, row) of a slide: predict these, write nothing


@dataclass(frozen=True)
class JobResult:
    """What a job did: the summary row's fields, the files written, and for a tile job the class
    maps of its tiles."""

    input_path: str
    name: str
    kind: str
    status: str  # 'ok', or why it failed, in words
    seconds: float = 0.0
    model_version: str = ""
    width: int | None = None
    height: int | None = None
    mpp: float | None = None
    shares: list[float] | None = None  # per class index, of the predicted pixels
    areas_um2: list[float] | None = None  # per class index, when the pixel size is known
    outputs: list[str] = field(default_factory=list)  # file names in the output folder
    class_maps: dict[tuple[int, int], np.ndarray] | None = None  # a tile job's (col, row) -> (h, w) uint8

    def row(self, num_classes: int) -> list:
        """The summary row (``summary.header`` order)."""
        shares = [round(s, 6) for s in self.shares] if self.shares is not None else [None] * num_classes
        areas = [round(a, 2) for a in self.areas_um2] if self.areas_um2 is not None else [None] * num_classes
        return [self.name, self.input_path, self.kind, self.width, self.height, self.mpp,
                *(v for pair in zip(shares, areas) for v in pair), self.model_version, round(self.seconds, 3),
                self.status]

    def record(self) -> dict:
        """The fields the manifest keeps (all but the class maps), as JSON takes them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "class_maps"}


@dataclass(frozen=True)
class RunReport:
    total: int
    failed: int
    summary: Path


# ----- on any worker --------------------------------------------------------------------------
_loaded: dict[tuple[str, str, str], Predictor] = {}


def loaded_predictor(model_dir: str | Path, device: str) -> Predictor:
    """The model folder's predictor, loaded once per process (a worker runs many jobs)."""
    card = read_model_card(Path(model_dir))
    key = (str(Path(model_dir).resolve()), device, card.sha256)
    if key not in _loaded:
        _loaded.clear()  # one model at a time: a worker serves one run
        _loaded[key] = Predictor.load(Path(model_dir), device)
    return _loaded[key]


def run_job(job: PredictJob) -> JobResult:
    """Do one job (see the module docstring). Never raises for a bad input: the result says why."""
    start = time.perf_counter()
    path = Path(job.input_path)
    try:
        predictor = loaded_predictor(job.model_dir, job.device)
        card = predictor.card
        if job.tiles is not None:
            maps = predictor.predict_tiles(path, list(job.tiles))
            return JobResult(job.input_path, job.name, job.kind, "ok", time.perf_counter() - start, card.label,
                             class_maps=maps)
        if job.kind == "slide":
            mask, layout = predictor.predict_slide(path)
            return _slide_result(job, card, mask, layout, time.perf_counter() - start)
        pixels = read_image(path)
        mask = class_map(predictor.predict_picture(pixels))
        outputs = write_picture_outputs(Path(job.out_dir), job.name, pixels, mask, card, job.formats)
        shares, _ = class_areas(mask, len(card.classes), None)
        return JobResult(job.input_path, job.name, "image", "ok", time.perf_counter() - start, card.label,
                         pixels.shape[1], pixels.shape[0], None, shares, None, outputs)
    except Exception as e:  # noqa: BLE001 - one bad input must not stop a run of thousands
        return failed_result(job, e, time.perf_counter() - start)


def tile_jobs(job: PredictJob, tiles_per_job: int) -> list[PredictJob]:
    """A slide's job cut into jobs of at most ``tiles_per_job`` tiles (none for a slide with no
    tissue); ``finish_slide`` takes their results. Reads only the slide and the model card, so it
    is quick and needs no GPU. Raises ImageReadError when the slide cannot be opened (report
    ``failed_result(job, error)`` for it)."""
    tiles = slide_tiles(Path(job.input_path), read_model_card(Path(job.model_dir)))
    return [dataclasses.replace(job, tiles=tuple(tiles[i:i + tiles_per_job]))
            for i in range(0, len(tiles), tiles_per_job)]


def finish_slide(job: PredictJob, parts: Sequence[JobResult]) -> JobResult:
    """The result of a slide's whole job from its tile jobs' results: their class maps put
    together and the slide's outputs written, the same files ``run_job`` writes for the whole
    job. Failed when any part failed (with that part's reason)."""
    start = time.perf_counter()
    seconds = sum(part.seconds for part in parts)
    failed = next((part for part in parts if part.status != "ok"), None)
    if failed is not None:
        return JobResult(job.input_path, job.name, job.kind, failed.status, seconds, failed.model_version)
    try:
        card = read_model_card(Path(job.model_dir))
        layout = slide_layout(Path(job.input_path), card)
        maps = {tile: classes for part in parts for tile, classes in (part.class_maps or {}).items()}
        return _slide_result(job, card, stitch(layout, maps), layout, seconds + time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - as in run_job
        return failed_result(job, e, seconds + time.perf_counter() - start)


def failed_result(job: PredictJob, error: BaseException, seconds: float = 0.0) -> JobResult:
    """A job's result when it failed with ``error``: the reason in words."""
    return JobResult(job.input_path, job.name, job.kind, _reason(error), seconds)


def _slide_result(job: PredictJob, card: ModelCard, mask: np.ndarray, layout: SlideLayout,
                  seconds: float) -> JobResult:
    outputs = write_slide_outputs(Path(job.out_dir), job.name, mask, layout.downsample, layout.mpp, card,
                                  job.formats)
    shares, areas = class_areas(mask, len(card.classes), layout.mpp)
    return JobResult(job.input_path, job.name, "slide", "ok", seconds, card.label, layout.source_width,
                     layout.source_height, layout.source_mpp, shares, areas, outputs)


def _reason(error: BaseException) -> str:
    if isinstance(error, ImageReadError):
        return error.reason
    if isinstance(error, PointillistError):
        return str(error)
    if isinstance(error, torch.OutOfMemoryError):
        return "not enough GPU memory to predict it"
    if isinstance(error, MemoryError):
        return "not enough free memory to predict it"
    traceback.print_exception(error, file=sys.stderr)  # a bug: the details for whoever fixes it
    return f"unexpected error ({type(error).__name__}: {error})"


# ----- in the main process ----------------------------------------------------------------------
TILES_PER_JOB = 16
"""Working tiles of one slide that a worker predicts in one job: a few seconds of work, so that
one large slide spreads over every worker; the main process stitches them into the slide's mask."""


def run_here(jobs: Iterable[PredictJob]) -> Iterator[JobResult]:
    """Run the jobs one after another in this process."""
    for job in jobs:
        yield run_job(job)


def on_workers(workers: int, scheduler: str | None, device: str,
               tiles_per_job: int = TILES_PER_JOB) -> Callable[[list[PredictJob]], Iterator[JobResult]]:
    """An executor for ``run_predict`` that runs the jobs on a Dask cluster
    (``cluster.run_on_cluster``): ``workers`` local processes, or the cluster of ``scheduler``.
    A slide is cut into tile jobs (``tiles_per_job`` tiles each) that spread over the workers, and
    is put together here, as the whole job would have written it.
    Dask is imported here, when asked for, so that a run in this process needs none, and a
    missing Dask is said before any work starts (PointillistError)."""
    try:
        from desktop.engine.predict.cluster import run_on_cluster
    except ImportError as e:
        raise PointillistError(f"Running on several workers needs Dask, which cannot be loaded here ({e}). "
                               "Install it (pip install distributed), or run with --workers 1.") from e

    def execute(jobs: list[PredictJob]) -> Iterator[JobResult]:
        work, slides = [], {}  # slides: input path -> (its whole job, how many tile jobs, results so far)
        for job in jobs:
            if job.kind != "slide":
                work.append(job)
                continue
            try:
                parts = tile_jobs(job, tiles_per_job)
            except Exception as e:  # noqa: BLE001 - as in run_job: a slide that cannot be opened is a row
                yield failed_result(job, e)
                continue
            if not parts:  # no tissue: nothing to spread
                yield finish_slide(job, [])
                continue
            slides[job.input_path] = (job, len(parts), [])
            work += parts
        for job, outcome in run_on_cluster(work, run_job, workers=workers, scheduler=scheduler, device=device):
            result = outcome if isinstance(outcome, JobResult) else failed_result(job, outcome)
            if job.tiles is None:
                yield result
                continue
            whole, count, parts = slides[job.input_path]
            parts.append(result)
            if len(parts) == count:  # the slide's last tiles: stitch and write it here
                yield finish_slide(whole, parts)

    return execute


def run_predict(paths: Sequence[Path], out_dir: Path, model: Path | Callable[[Path], Path],
                formats: tuple[str, ...] = FORMATS, device: str = "auto", overwrite: bool = False,
                execute: Callable[[list[PredictJob]], Iterable[JobResult]] | None = None,
                progress: LineProgress | BarProgress | None = None) -> RunReport:
    """Predict every input that ``paths`` name (see ``inputs.py``) into ``out_dir`` and write
    ``summary.csv``; see the module docstring.

    ``model`` is a model folder, or a function that writes one into ``out_dir`` and returns it
    (``model_dir.write_model_dir``): it is called once this run holds ``out_dir``, so that it never
    replaces the model under another run's workers. ``execute(jobs)`` runs the jobs and yields
    one result per job, in any order, as they finish; by default they run here, one by one, and
    the model is loaded before the first input, so that a device that is not there is said at
    once (PointillistError), not once per input. ``progress``: where to report
    (``progress.progress_for()`` by default). Raises PointillistError when another run holds
    ``out_dir``, or no inputs were found.
    """
    out_dir = Path(out_dir).absolute()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PointillistError(f"Cannot make the output folder '{out_dir}': {e.strerror or e}.") from e
    lock = FileLock(out_dir / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout as e:
        raise PointillistError(f"Another 'pointillist predict' is writing into '{out_dir}'; wait for it to end, "
                               "or choose another --out.") from e
    try:
        remove_stale_temporaries(out_dir, older_than=0.0)  # ours alone: we hold the folder
        model_dir = Path(model if isinstance(model, Path) else model(out_dir)).absolute()
        card = read_model_card(model_dir)
        if execute is None:
            loaded_predictor(model_dir, device)
            execute = run_here
        return _run(paths, out_dir, model_dir, card, formats, device, overwrite, execute, progress or progress_for())
    finally:
        lock.release()


def _run(paths, out_dir: Path, model_dir: Path, card: ModelCard, formats, device, overwrite, execute,
         progress) -> RunReport:
    inputs = collect_inputs(paths, skip=out_dir)
    if not inputs:
        raise PointillistError("No images or slides were found in the inputs given.")
    names = input_names(inputs, ENDINGS)
    manifest = Manifest.open(out_dir, {"version": card.model_version, "sha256": card.sha256}, fresh=overwrite)
    results: dict[str, JobResult] = {}  # by input path, as the jobs name it
    states: dict[str, dict] = {}
    jobs, refused = [], []
    for item, name in zip(inputs, names):
        key = str(item.path)
        job = PredictJob(key, name, item.kind, str(out_dir), str(model_dir), tuple(formats), device)
        try:
            if item.problem is not None:
                raise ImageReadError(item.path, item.problem)
            states[key] = file_state(item.path)
        except (ImageReadError, OSError) as e:  # OSError: gone since it was found
            refused.append(failed_result(job, e))
            continue
        row = manifest.finished(key, states[key], planned_outputs(name, item.kind, formats))
        if row is not None:
            results[key] = JobResult(**row)
        else:
            jobs.append(job)
    order = [str(item.path) for item in inputs]
    summary = out_dir / SUMMARY_FILE
    class_names = [c.name for c in sorted(card.classes, key=lambda c: c.index)]
    total, done = len(inputs), len(results)
    def write() -> None:
        write_summary(summary, class_names, [results[k].row(len(class_names)) for k in order if k in results])

    progress.start(total, done)
    arrived = False
    for result in itertools.chain(refused, execute(jobs)):
        results[result.input_path] = result
        if result.status == "ok":
            manifest.record(result.input_path, states[result.input_path], result.outputs, result.record())
        write()
        arrived = True
        done += 1
        progress.done(done, total, result.name, result.status)
    if not arrived:  # every input was done by an earlier run: the summary still lists them all
        write()
    progress.end(str(summary))
    return RunReport(total, sum(r.status != "ok" for r in results.values()), summary)

"""``pointillist bench predict``: how fast ``pointillist predict`` goes on 1, 2, ... local workers.

For each worker count the project's model predicts every input afresh, into a temporary
folder, through ``run_predict``, the command's own path: with one worker in this process, as
``--workers 1`` runs; with more on a local Dask cluster set up as ``--workers N`` sets it up
(``cluster.local_cluster``, each job with ``cluster.local_threads`` torch threads). One worker
is always measured: it is what the speedups are over. Pictures and slides are timed apart.

JSON: ``images``, ``slides``, ``slide_tiles`` (the tiles the slides' tissue covers at the
model's working resolution: the unit of a slide's work), ``cores``, ``device``, and in ``runs``
per worker count: ``start_s`` (starting the cluster and loading the model in each worker: what
a command pays once, before its first result), ``images_per_s`` and ``tiles_per_s`` (from the
first job to the last result, writing the outputs, the summary and the manifest included),
``speedup`` of each over one worker, ``failed`` inputs, ``torch_threads`` per job, and
``peak_rss_mb``, the peak resident memory of each worker process (for one worker, of this
process, which also holds the benchmark).
"""
from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import psutil
import torch

from desktop.engine.predict.cluster import local_cluster, local_threads, run_on_cluster, usable_cores
from desktop.engine.predict.inputs import collect_inputs
from desktop.engine.predict.model_dir import read_model_card, write_model_dir
from desktop.engine.predict.predictor import slide_tiles
from desktop.engine.predict.progress import LineProgress
from desktop.engine.predict.run import JobResult, failed_result, loaded_predictor, run_job, run_predict
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine


def run(project: Path, inputs: Sequence[Path], workers: Sequence[int] = (1, 2), learner: str = "fast",
        device: str = "auto", log: Callable[[str], None] = print) -> dict:
    """Measure ``inputs`` (files, folders or lists, as ``pointillist predict`` takes them) with the
    newest saved model of ``learner`` in ``project``, on each worker count of ``workers``."""
    if min(workers, default=1) < 1:
        raise SystemExit("Worker counts are 1 or more.")
    found = [item for item in collect_inputs(inputs) if item.problem is None]
    images = [item.path for item in found if item.kind == "image"]
    slides = [item.path for item in found if item.kind == "slide"]
    if not found:
        raise SystemExit("No readable images or slides were found in the inputs given.")
    with tempfile.TemporaryDirectory(prefix="pointillist-bench-") as folder:
        model_dir = _model_dir(project, learner, Path(folder) / "model")
        card = read_model_card(model_dir)
        tiles = sum(len(slide_tiles(path, card)) for path in slides)
        runs = []
        for count in sorted(set(workers) | {1}):
            measured = _measure(count, images, slides, tiles, model_dir, device, Path(folder) / f"workers{count}")
            runs.append({"workers": count, **measured})
            log(f"{count} worker(s): {json.dumps(measured)}")
    for measured in runs:
        measured["speedup"] = {rate: _ratio(measured[rate], runs[0][rate]) for rate in ("images_per_s", "tiles_per_s")}
    return {"project": str(project), "images": len(images), "slides": len(slides), "slide_tiles": tiles,
            "cores": usable_cores(),
            "device": device, "runs": runs}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (run on each worker by ``client.run``).
    On Linux the kernel's high-water mark of this process's memory (``VmHWM``), not ``ru_maxrss``,
    which a worker inherits from the process it was forked from before it started afresh."""
    status = Path("/proc/self/status")
    if status.exists():
        return round(next(int(line.split()[1]) for line in status.read_text().splitlines()
                          if line.startswith("VmHWM:")) / 1024, 1)
    memory = psutil.Process().memory_info()
    if hasattr(memory, "peak_wset"):  # Windows
        return round(memory.peak_wset / 2**20, 1)
    import resource  # macOS, where it counts bytes

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1)


def warm_up(model_dir: str, device: str) -> None:
    """Load the model into this process's cache, as the first job would (run on each worker)."""
    loaded_predictor(model_dir, device)


def _measure(workers: int, images: list[Path], slides: list[Path], tiles: int, model_dir: Path, device: str,
             out: Path) -> dict:
    start = time.perf_counter()
    if workers == 1:
        warm_up(str(model_dir), device)
        figures = _timings(start, None, images, slides, tiles, model_dir, device, out)
        return {**figures, "torch_threads": torch.get_num_threads(), "peak_rss_mb": [peak_rss_mb()]}
    with local_cluster(workers, device) as cluster, cluster.get_client() as client:
        client.run(warm_up, str(model_dir), device)
        execute = _on_cluster(cluster.scheduler_address, local_threads(workers))
        figures = _timings(start, execute, images, slides, tiles, model_dir, device, out)
        return {**figures, "torch_threads": local_threads(workers),
                "peak_rss_mb": sorted(client.run(peak_rss_mb).values())}


def _timings(start: float, execute, images: list[Path], slides: list[Path], tiles: int, model_dir: Path,
             device: str, out: Path) -> dict:
    """The figures of one worker count, ``start`` being when it began to start (its cluster)."""
    start_s = time.perf_counter() - start
    images_s, images_failed = _timed(images, out / "images", model_dir, device, execute)
    slides_s, slides_failed = _timed(slides, out / "slides", model_dir, device, execute)
    return {"start_s": round(start_s, 2), "images_s": _round(images_s), "images_per_s": _rate(len(images), images_s),
            "slides_s": _round(slides_s), "tiles_per_s": _rate(tiles, slides_s),
            "failed": images_failed + slides_failed}


def _on_cluster(scheduler: str, threads: int):
    """``run_predict``'s executor on the benchmark's cluster, as ``run.on_workers`` makes it for
    the command's own, with the torch threads the command's local cluster gives each job."""
    def execute(jobs):
        for job, outcome in run_on_cluster(jobs, run_job, scheduler=scheduler, threads_per_worker=threads):
            yield outcome if isinstance(outcome, JobResult) else failed_result(job, outcome)
    return execute


def _timed(paths: list[Path], out: Path, model_dir: Path, device: str, execute) -> tuple[float | None, int]:
    """(seconds, failed inputs) of one ``run_predict`` over ``paths``; (None, 0) for no paths."""
    if not paths:
        return None, 0
    start = time.perf_counter()
    report = run_predict(paths, out, model_dir, device=device, overwrite=True, execute=execute,
                         progress=LineProgress(io.StringIO()))
    return time.perf_counter() - start, report.failed


def _model_dir(project: Path, learner: str, folder: Path) -> Path:
    """The model folder ``pointillist predict`` would write for the project's newest model."""
    with Project.open(project, read_only=True) as opened:
        write_model_dir(SegmentationEngine(opened, learner=learner, device="cpu"), None, folder)
    return folder


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 2) if seconds else None


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None

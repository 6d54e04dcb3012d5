"""``pointillist predict --workers N`` and ``--scheduler ADDRESS``: the jobs run on a Dask cluster.

Dask's ``distributed`` is the engine, not a job system of our own: it starts and watches the
worker processes (a worker that dies is replaced and its job retried elsewhere), hands the next
job to whichever worker is free, returns results as they finish, and runs the same code on a
SLURM, PBS or LSF cluster through ``dask-jobqueue`` (docs/cluster.md).

The caller knows nothing of Dask: it gives a list of picklable jobs and a top-level function,
and reads ``(job, outcome)`` pairs as they come (:func:`run_on_cluster`).
"""
from __future__ import annotations

import logging
import os
import signal
from functools import partial
from typing import Any, Callable, Iterator, Sequence

from distributed import Client, LocalCluster, Nanny, as_completed, get_worker

from desktop.engine.errors import PointillistError


class SchedulerUnreachable(PointillistError):
    """``--scheduler ADDRESS`` names no Dask scheduler this machine can reach."""


def run_on_cluster(jobs: Sequence, fn: Callable, *, workers: int = 2, scheduler: str | None = None,
                   device: str = "cpu", threads_per_worker: int | None = None) -> Iterator[tuple[Any, Any]]:
    """Run ``fn(job)`` for every job on a Dask cluster; yield ``(job, outcome)`` as each finishes,
    in any order.

    ``outcome`` is what ``fn`` returned, or the exception it raised (an ``Exception`` instance:
    test ``isinstance(outcome, Exception)``); one job's failure does not stop the others. A job
    whose worker process died (out of memory, a crash) is retried on other workers, and after
    three deaths its outcome is Dask's ``KilledWorker``. A job that raises ``SystemExit`` fails
    with a ``RuntimeError`` of the same message instead of ending its worker process.

    Where the jobs run: with ``scheduler`` (``tcp://HOST:PORT``), on the cluster that scheduler
    runs (``workers`` is then unused); otherwise on a new cluster of ``workers`` processes on this
    machine (:func:`local_cluster`), pinned one GPU each when ``device`` is CUDA and several GPUs
    are visible (:func:`gpu_per_worker`).

    ``threads_per_worker``: the torch threads each job uses. Default: on a local cluster,
    :func:`local_threads` (this machine's cores shared among the workers); on an existing one,
    :func:`worker_threads` (each worker's cores shared among the jobs it runs at once).

    Leaving the loop early (``break``, an exception in it, Ctrl+C) closes the generator, which
    cancels the jobs not yet done and closes the client, and the local cluster, which is always
    closed. ``jobs`` and ``fn`` must be picklable, and importable by name on the workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if not jobs:
        return
    if scheduler is None and threads_per_worker is None:
        threads_per_worker = local_threads(workers)
    task = partial(_run_job, fn, threads_per_worker)
    cluster = None
    try:
        if scheduler is None:
            cluster = local_cluster(workers, device)
        with _connect(scheduler) if cluster is None else Client(cluster, set_as_default=False) as client:
            pending = dict(zip(client.map(task, jobs, pure=False), jobs))
            try:
                for future in as_completed(list(pending), loop=client.loop):
                    yield pending.pop(future), _outcome(future)
            finally:
                client.cancel(list(pending))
    finally:
        if cluster is not None:
            cluster.close()


def local_cluster(workers: int, device: str = "cpu") -> LocalCluster:
    """A Dask cluster of ``workers`` processes on this machine that nothing else can reach: the
    scheduler, the workers and the scheduler's health page listen on 127.0.0.1 only, and there is
    no dashboard. Each worker runs one job at a time, and sees only its own GPU where
    :func:`gpu_per_worker` gives it one (``CUDA_VISIBLE_DEVICES``, set as the process starts).

    No memory limit: a job holds a model and one image or slide tile, which Dask cannot spill to
    disk, and Dask's default (the machine's memory divided among the workers) would kill a worker
    on a large slide while the machine still has room; the operating system is the limit, as it is
    for ``--workers 1``. Logs are silenced: a failed job is reported by its outcome."""
    gpus = gpu_per_worker(workers, device, os.environ.get("CUDA_VISIBLE_DEVICES"), _gpu_count(device))
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None,
                        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                        silence_logs=logging.CRITICAL, memory_limit=0, worker_class=_GpuNanny, gpus=gpus,
                        preload=[__name__])


def local_threads(workers: int) -> int:
    """The torch threads of each job on a local cluster of ``workers``: :func:`usable_cores`
    shared among the workers, so that they do not fight over the cores."""
    return max(1, usable_cores() // workers)


def usable_cores() -> int:
    """The CPU cores this process may use: its affinity (a batch system's share), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_per_worker(workers: int, device: str, visible: str | None, count: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each local worker: one GPU each, in turn, when ``device``
    asks for CUDA without naming a GPU (``cuda``, ``auto``) and ``count`` > 1 GPUs are visible;
    None for every worker otherwise (nothing to share out: ``cpu``, ``mps``, one GPU, or a named
    one such as ``cuda:1``, which every worker then uses).

    ``visible`` is this process's ``CUDA_VISIBLE_DEVICES`` (None: unset), so that a user's
    ``2,3`` hands out GPUs 2 and 3 (indices or UUIDs), not 0 and 1; only its first ``count``
    entries count, as CUDA ignores what follows an invalid one. With more workers than GPUs,
    worker ``i`` shares GPU ``i mod count``."""
    if device not in ("cuda", "auto") or count < 2:
        return [None] * workers
    gpus = [str(i) for i in range(count)] if visible is None else [gpu.strip() for gpu in visible.split(",")][:count]
    return [gpus[i % len(gpus)] for i in range(workers)]


def worker_threads() -> int:
    """The torch threads of each job on a worker of an existing cluster: the cores its process may
    use (on a batch system, its job's share where the site binds jobs to their cores) shared among
    the jobs it runs at once (its Dask threads)."""
    return max(1, usable_cores() // get_worker().state.nthreads)


def dask_setup(worker) -> None:
    """Run by Dask in each local worker process as it starts (the ``preload`` of
    :func:`local_cluster`): the worker ignores Ctrl+C. The terminal sends it to the whole process
    group, and this process closes the workers itself; without this each worker would also print
    a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _GpuNanny(Nanny):
    """Dask's nanny (which starts and restarts one worker process), starting its worker with its
    own ``CUDA_VISIBLE_DEVICES``: ``gpus[name]``, LocalCluster naming its workers 0, 1, ..."""

    def __init__(self, *args, gpus: list[str | None], name: int, env: dict | None = None, **kwargs):
        if gpus[name] is not None:
            env = {**(env or {}), "CUDA_VISIBLE_DEVICES": gpus[name]}
        super().__init__(*args, name=name, env=env, **kwargs)


def _run_job(fn: Callable, threads: int | None, job):
    """``fn(job)`` on a worker, with ``threads`` torch threads (None: :func:`worker_threads`).
    Set here, in the thread that runs the job, because OpenMP's thread count belongs to the
    calling thread."""
    import torch

    torch.set_num_threads(threads or worker_threads())
    try:
        return fn(job)
    except SystemExit as error:  # a refusal in words: it fails this job, not its worker process
        raise RuntimeError(str(error)) from None


def _outcome(future):
    try:
        return future.result()
    except Exception as error:
        return error


def _connect(address: str) -> Client:
    try:
        return Client(address, set_as_default=False)  # waits distributed.comm.timeouts.connect (30 s)
    except (OSError, ValueError, TypeError) as error:
        raise SchedulerUnreachable(
            f"Cannot reach the Dask scheduler at '{address}' (is the cluster running, and is its port "
            "open to this machine?)") from error


def _gpu_count(device: str) -> int:
    if device not in ("cuda", "auto"):
        return 0
    import torch

    return torch.cuda.device_count()

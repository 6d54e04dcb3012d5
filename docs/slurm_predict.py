"""Run ``pointillist predict`` on a SLURM cluster: the Dask workers are SLURM jobs, started with
dask-jobqueue, and the command runs here, on the login node, sending them its inputs through
their scheduler (``--scheduler``). See docs/cluster.md.

    pip install dask-jobqueue          # once, into the environment that has pointillist
    python docs/slurm_predict.py --jobs 4 -- PROJECT /shared/slides --out /shared/results

Everything after ``--`` is passed to ``pointillist predict`` as it is. ``--print-job-script``
prints the batch script each SLURM job runs and submits nothing: check it first. Adapt
``start_cluster`` to your site: partition, account, GPUs, memory, time limit, the Python of
the nodes, the network the nodes reach this machine on.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from dask_jobqueue import SLURMCluster


def start_cluster(cpus: int, memory: str, gpus: int, walltime: str) -> SLURMCluster:
    """A Dask scheduler here, for workers that are SLURM jobs of ``cpus`` cores, ``memory`` and
    ``gpus`` GPUs each, one worker per job running one input at a time with ``cpus`` torch threads."""
    return SLURMCluster(
        cores=1,  # Dask threads per worker: one input at a time, as `pointillist predict --workers N` runs them
        processes=1,  # one worker process per job
        job_cpu=cpus,  # the cores SLURM books for the job, which the input's torch threads use
        memory=memory,
        walltime=walltime,
        job_extra_directives=[f"--gres=gpu:{gpus}"] if gpus else [],  # e.g. also "--partition=gpu", "--account=lab"
        # interface="ib0",  # the network the nodes reach this machine on, when it is not the default one
        # python="/shared/envs/pointillist/bin/python",  # the nodes' Python, when it is not this one's path
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="SLURM jobs to start, one Dask worker each")
    parser.add_argument("--cpus", type=int, default=8, help="cores per job")
    parser.add_argument("--memory", default="32GB", help="memory per job")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per job (0: none; give --device cpu then)")
    parser.add_argument("--walltime", default="04:00:00", help="SLURM's time limit per job")
    parser.add_argument("--print-job-script", action="store_true", help="print the job script; submit nothing")
    parser.add_argument("predict", nargs=argparse.REMAINDER, help="-- and the arguments of pointillist predict")
    args = parser.parse_args(argv)
    predict = args.predict[1:] if args.predict[:1] == ["--"] else args.predict
    if not predict and not args.print_job_script:
        parser.error("give the arguments of pointillist predict after --")
    with start_cluster(args.cpus, args.memory, args.gpus, args.walltime) as cluster:  # closing it cancels the jobs
        if args.print_job_script:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)
        print(f"Scheduler at {cluster.scheduler_address}; the inputs start as the SLURM jobs do.", flush=True)
        command = [sys.executable, "-m", "desktop.cli", "predict", *predict, "--scheduler", cluster.scheduler_address]
        try:
            return subprocess.call(command)
        except KeyboardInterrupt:  # Ctrl+C reached the command too: it has stopped, and kept what it finished
            return 130


if __name__ == "__main__":
    sys.exit(main())

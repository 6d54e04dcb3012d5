"""docs/slurm_predict.py, the SLURM recipe of docs/cluster.md, as far as it can be run without
SLURM: the job script it would submit, and (slow) a whole run with a stand-in ``sbatch`` that runs
the job script on this machine. Skipped where dask-jobqueue, which the app does not need, is
not installed."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import trained_project

pytest.importorskip("dask_jobqueue")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "slurm_predict.py"

SBATCH = """#!/bin/bash
# A stand-in for SLURM's sbatch: runs the job script here, in the background, in its own session.
setsid bash "$1" > "{folder}/job-$$.log" 2>&1 < /dev/null &
echo $! > "{folder}/job-$$.pid"
echo "Submitted batch job $$"
"""
SCANCEL = """#!/bin/bash
for id in "$@"; do kill -TERM -- -"$(cat "{folder}/job-$id.pid")"; done
"""


def test_the_job_script_books_the_cores_and_the_gpu_for_one_input_at_a_time():
    run = subprocess.run([sys.executable, str(SCRIPT), "--print-job-script", "--cpus", "4", "--memory", "16GB"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    for line in ("#SBATCH --cpus-per-task=4", "#SBATCH --gres=gpu:1", "-m distributed.cli.dask_worker tcp://",
                 "--nthreads 1 "):
        assert line in run.stdout, run.stdout


@pytest.mark.slow
def test_a_run_through_sbatch_predicts_every_input(tmp_path):
    project = trained_project(tmp_path)
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    for name, text in (("sbatch", SBATCH), ("scancel", SCANCEL)):
        (bin_folder / name).write_text(text.format(folder=bin_folder))
        (bin_folder / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(SCRIPT), "--jobs", "2", "--cpus", "1", "--memory", "4GB", "--gpus", "0",
                          "--", str(project), str(project.parent / "images"), "--out", str(out), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(out / "summary.csv", newline="") as summary:
        assert [row["status"] for row in csv.DictReader(summary)] == ["ok"] * 3
    assert len(list(bin_folder.glob("job-*.log"))) == 2

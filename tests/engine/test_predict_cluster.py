"""``pointillist predict --workers N`` / ``--scheduler ADDRESS`` on Dask (desktop/engine/predict/cluster.py),
with the stand-in jobs of cluster_jobs.py until the real ones exist.

One 2-worker local cluster (a module fixture) stands for an existing cluster in the tests that
go through ``scheduler=``; the tests of ``workers=`` start their own, as the command does (a
second or two each).
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import dask
import psutil
import pytest

from desktop.engine.errors import ImageReadError
from desktop.engine.predict import cluster as cluster_module
from desktop.engine.predict.cluster import (SchedulerUnreachable, gpu_per_worker, local_cluster, run_on_cluster,
                                            usable_cores)

from .cluster_jobs import MeanJob, image_mean, refuse, where_it_ran
from .helpers import blob_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pictures")
    for i in range(6):
        blob_image(folder / f"cells{i}.png", size=64, seed=i)
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as running:
        yield running


def descendants() -> set[int]:
    """This process's children and theirs, less multiprocessing's resource tracker, which the
    first worker process starts and which lives as long as this process."""
    pids = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if not any("resource_tracker" in part for part in child.cmdline()):
                pids.add(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):  # gone already
            pass
    return pids


def settles(condition, seconds: float = 10.0) -> bool:
    """Whether ``condition()`` becomes true within ``seconds`` (a cluster closes asynchronously)."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def test_local_workers_give_the_in_process_results(pictures):
    jobs = [MeanJob(p) for p in pictures]
    before = descendants()
    results = dict(run_on_cluster(jobs, image_mean, workers=2))
    assert results == {job: image_mean(job) for job in jobs}
    assert settles(lambda: descendants() <= before), "the local cluster's processes outlived the run"


def test_jobs_run_in_worker_processes_with_the_threads_asked_for(cluster, pictures):
    jobs = [MeanJob(p) for p in pictures[:4]]
    seen = [outcome for _, outcome in run_on_cluster(jobs, where_it_ran, scheduler=cluster.scheduler_address,
                                                     threads_per_worker=3)]
    assert len(seen) == 4 and {s["torch_threads"] for s in seen} == {3}
    assert {s["pid"] for s in seen} <= descendants()  # the cluster's worker processes, not this one
    # By default each worker's cores are shared among the jobs it runs at once: here one at a time.
    seen = [outcome for _, outcome in run_on_cluster(jobs, where_it_ran, scheduler=cluster.scheduler_address)]
    assert {s["torch_threads"] for s in seen} == {usable_cores()}


def test_a_failing_job_is_reported_and_the_others_finish(cluster, pictures, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    good = [MeanJob(p) for p in pictures]
    jobs = good + [MeanJob(broken), MeanJob(tmp_path / "missing.png")]
    outcomes = dict(run_on_cluster(jobs, image_mean, scheduler=cluster.scheduler_address))
    assert {job: outcomes[job] for job in good} == {job: image_mean(job) for job in good}
    for job in jobs[-2:]:
        assert isinstance(outcomes[job], ImageReadError) and outcomes[job].path == job.path


def test_a_job_that_exits_fails_alone_and_keeps_its_worker(cluster, pictures):
    workers = set(cluster.scheduler.workers)
    [(job, outcome)] = run_on_cluster([MeanJob(pictures[0])], refuse, scheduler=cluster.scheduler_address)
    assert isinstance(outcome, RuntimeError) and str(outcome) == "No model for 'cells0.png'."
    assert set(cluster.scheduler.workers) == workers


def test_an_existing_scheduler_runs_the_jobs_and_keeps_running(cluster, pictures):
    jobs = [MeanJob(p) for p in pictures]
    before = descendants()
    results = dict(run_on_cluster(jobs, image_mean, workers=5, scheduler=cluster.scheduler_address))
    assert results == {job: image_mean(job) for job in jobs}
    assert descendants() == before  # no local cluster was started
    assert len(cluster.scheduler.workers) == 2 and not cluster.scheduler.tasks  # nothing left behind


def test_an_unreachable_scheduler_is_said_in_words():
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(SchedulerUnreachable, match="tcp://127.0.0.1:9"):
            list(run_on_cluster([MeanJob(Path("a.png"))], image_mean, scheduler="tcp://127.0.0.1:9"))


def test_leaving_the_loop_cancels_what_is_left_on_an_existing_cluster(cluster, pictures):
    jobs = [MeanJob(p, seconds=0.5) for p in pictures]
    with pytest.raises(KeyboardInterrupt):
        for _ in run_on_cluster(jobs, image_mean, scheduler=cluster.scheduler_address):
            raise KeyboardInterrupt
    assert settles(lambda: not cluster.scheduler.tasks), "the cancelled jobs stayed on the scheduler"


CTRL_C = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if this test runs with Ctrl+C ignored
    from desktop.engine.predict.cluster import run_on_cluster
    from tests.engine.cluster_jobs import MeanJob, image_mean
    jobs = [MeanJob(Path(p), seconds=0.3) for p in sys.argv[1:]]
    try:
        for job, outcome in run_on_cluster(jobs, image_mean, workers=2):
            print("finished", job.path.name, flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def test_ctrl_c_stops_the_command_quietly(pictures):
    """Ctrl+C reaches the whole process group, the workers included: they ignore it, the command
    cancels the rest, closes them and exits, and no worker prints a traceback."""
    run = subprocess.Popen([sys.executable, "-c", CTRL_C, *map(str, pictures * 5)], cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert run.stdout.readline().startswith("finished")
        workers = psutil.Process(run.pid).children(recursive=True)
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130 and out.endswith("interrupted\n"), out + err
    assert "Traceback" not in err, err
    assert not psutil.wait_procs(workers, timeout=10)[1], "worker processes outlived the command"


def test_the_local_cluster_listens_on_this_machine_only_without_a_dashboard(cluster):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    listening = {c.laddr for p in processes for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert len(listening) >= 5 and {a.ip for a in listening} == {"127.0.0.1"}  # scheduler, 2 nannies, 2 workers
    # The scheduler's one HTTP port (loopback, chosen at random) serves its health check, not the dashboard.
    http = f"http://127.0.0.1:{cluster.scheduler.http_server.port}"
    assert cluster.scheduler.http_server.address == "127.0.0.1"
    assert urllib.request.urlopen(f"{http}/health", timeout=5).status == 200
    for page in ("/", "/status"):
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(http + page, timeout=5)


def test_each_local_worker_sees_its_own_gpu(monkeypatch):
    """The whole path from this process's GPUs to each worker's environment; only the GPU count,
    which needs a GPU, is made up."""
    monkeypatch.setattr(cluster_module, "_gpu_count", lambda device: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with local_cluster(2, "cuda") as pinned, pinned.get_client() as client:
        seen = client.run(lambda dask_worker: (dask_worker.name, os.environ.get("CUDA_VISIBLE_DEVICES")))
    assert sorted(seen.values()) == [(0, "3"), (1, "5")]


@pytest.mark.parametrize("workers, device, visible, count, expected", [
    (2, "cuda", None, 2, ["0", "1"]),
    (4, "auto", None, 2, ["0", "1", "0", "1"]),  # more workers than GPUs: they share in turn
    (3, "cuda", None, 4, ["0", "1", "2"]),
    (2, "cuda", "2,3", 2, ["2", "3"]),  # the user's own choice of GPUs is what is shared out
    (2, "cuda", "GPU-aa, GPU-bb", 2, ["GPU-aa", "GPU-bb"]),
    (2, "cuda", "1,0,-1,3", 2, ["1", "0"]),  # CUDA ignores what follows an invalid entry
    (2, "cuda", None, 1, [None, None]),  # one GPU: nothing to share out
    (2, "cuda", None, 0, [None, None]),
    (2, "cuda:1", None, 2, [None, None]),  # a named GPU: every worker uses that one
    (2, "cpu", None, 2, [None, None]),
    (2, "mps", None, 0, [None, None]),
])
def test_gpu_per_worker(workers, device, visible, count, expected):
    assert gpu_per_worker(workers, device, visible, count) == expected


def test_an_empty_list_starts_nothing():
    before = descendants()
    assert list(run_on_cluster([], image_mean, workers=2)) == []
    assert descendants() == before

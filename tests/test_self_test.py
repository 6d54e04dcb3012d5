"""``pointillist --self-test`` and ``--time-to-window`` as a user runs them:
a child process, offscreen, in which every attempt to reach the network is refused and recorded
(see ``tests/network_guard.py``)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_guarded(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``python ARGS`` with the network guard; returns the process and the recorded attempts."""
    guard = tmp_path / "guard"
    guard.mkdir()
    shutil.copy(ROOT / "tests" / "network_guard.py", guard / "sitecustomize.py")
    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QT_QPA"))}  # the app sets its own
    env.update(PYTHONPATH=str(guard), POINTILLIST_NETWORK_LOG=str(log))
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert log.exists(), "the network guard did not run in the child"
    return done, log.read_text().splitlines()


def test_the_guard_refuses_and_records_network_attempts(tmp_path):
    code = ("import socket\n"
            "for target in (lambda: socket.create_connection(('example.com', 80), timeout=1),\n"
            "               lambda: socket.socket().connect(('127.0.0.1', 9))):\n"
            "    try:\n"
            "        target()\n"
            "    except ConnectionRefusedError:\n"
            "        pass\n"
            "a, b = socket.socketpair(socket.AF_UNIX)\n"
            "a.sendall(b'local'); assert b.recv(5) == b'local'\n")
    done, attempts = run_guarded(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert attempts == ["getaddrinfo ('example.com',)", "connect AF_INET (('127.0.0.1', 9),)"]


def test_self_test_passes_offscreen_without_the_network(tmp_path):
    done, attempts = run_guarded(["-m", "desktop.cli", "--self-test"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "ok   libraries", "ok   pretrained weights", "ok   demo project", "ok   train fast learner", "ok   predict",
        "ok   export masks", "ok   main window"]
    assert lines[-1].startswith("self-test: all steps passed in")
    assert "Qt platform 'offscreen'" in lines[-2]
    assert attempts == []


def test_time_to_window_offscreen_without_the_network(tmp_path):
    done, attempts = run_guarded(["-m", "desktop.cli", "--time-to-window"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("main window shown ") and "after process start" in done.stdout
    assert attempts == []

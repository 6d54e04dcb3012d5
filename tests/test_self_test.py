"""``pointillist --self-test`` and ``--time-to-window`` as a user runs them:
a child process, offscreen, in which every attempt to reach the network is refused and recorded
(see ``tests/network_guard.py``)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        "ok   export masks", "ok   main window", "ok   window on the display"]
    assert lines[-1].startswith("self-test: all steps passed in")
    assert "Qt platform 'offscreen'" in lines[-3]
    assert attempts == []


def test_time_to_window_offscreen_without_the_network(tmp_path):
    done, attempts = run_guarded(["-m", "desktop.cli", "--time-to-window"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("main window shown ") and "after process start" in done.stdout
    assert attempts == []


# ----- the window on a real display, and the xcb plugin's system libraries -----------------------
# The first lines of a real 'ldd' of PySide6's libqxcb.so (captured on the development machine, the
# venv's path shortened), with the two libraries written as ldd writes a library it cannot
# find ('NAME => not found'); the last line repeats one of them, which is to be named once.
LDD_OUTPUT = """\tlinux-vdso.so.1 (0x00007ffd6b5f2000)
\tlibQt6XcbQpa.so.6 => /opt/app/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f5a48a75000)
\tlibQt6Gui.so.6 => /opt/app/PySide6/Qt/plugins/platforms/../../lib/libQt6Gui.so.6 (0x00007f5a47e00000)
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f5a489e5000)
\tlibQt6Core.so.6 => /opt/app/PySide6/Qt/plugins/platforms/../../lib/libQt6Core.so.6 (0x00007f5a47600000)
\tlibxkbcommon.so.0 => /lib/x86_64-linux-gnu/libxkbcommon.so.0 (0x00007f5a4899d000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f5a48992000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f5a4897c000)
\tlibxcb-image.so.0 => /lib/x86_64-linux-gnu/libxcb-image.so.0 (0x00007f5a48976000)
\tlibxcb-icccm.so.4 => not found
"""
ADVICE = ("Qt cannot load its 'xcb' window-system plugin: this system lacks libxcb-cursor.so.0, libxcb-icccm.so.4. "
          "On Debian or Ubuntu install them with: sudo apt-get install libxcb-cursor0 libxcb-icccm4 "
          "(elsewhere, install the packages that provide these files).")
XVFB = shutil.which("xvfb-run")


def test_missing_libraries_are_read_from_ldd_and_named_with_their_packages():
    from desktop.qt_platform import advice, debian_package, missing_libraries

    assert missing_libraries(LDD_OUTPUT) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    assert missing_libraries(LDD_OUTPUT.replace("not found", "/lib/x.so (0x1)")) == []
    assert advice(missing_libraries(LDD_OUTPUT)) == ADVICE
    # checked against 'dpkg -S' on Ubuntu 24.04 for every library libqxcb.so links against
    assert [debian_package(lib) for lib in [
        "libxcb-render-util.so.0", "libxkbcommon-x11.so.0", "libX11-xcb.so.1", "libX11.so.6", "libEGL.so.1",
        "libdbus-1.so.3", "libpng16.so.16", "libglib-2.0.so.0", "libz.so.1", "libGLdispatch.so.0", "libc.so.6",
        "libgcc_s.so.1", "libfontconfig.so.1"]] == [
        "libxcb-render-util0", "libxkbcommon-x11-0", "libx11-xcb1", "libx11-6", "libegl1", "libdbus-1-3",
        "libpng16-16", "libglib2.0-0", "zlib1g", "libglvnd0", "libc6", "libgcc-s1", "libfontconfig1"]


def test_xcb_is_checked_only_where_qt_will_use_it():
    from desktop.qt_platform import uses_xcb

    linux = sys.platform.startswith("linux")
    assert uses_xcb({"DISPLAY": ":0"}) == linux
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}) == linux
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb;wayland"}) == linux
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"})
    assert not uses_xcb({"XDG_SESSION_TYPE": "wayland"})


def _ldd_that_lacks_two(tmp_path: Path) -> dict[str, str]:
    """An environment whose 'ldd' prints LDD_OUTPUT: the two libraries missing, on a machine that
    has them; with an X display that does not exist, so Qt aborts if the check lets it start."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "ldd.txt").write_text(LDD_OUTPUT)
    (bin_dir / "ldd").write_text(f"#!/bin/sh\ncat '{tmp_path / 'ldd.txt'}'\n")
    (bin_dir / "ldd").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_QPA", "WAYLAND", "XDG_SESSION"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", DISPLAY=":97", POINTILLIST_HOME=str(tmp_path))
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_pointillist_names_the_missing_packages_instead_of_qts_abort(tmp_path):
    done = subprocess.run([sys.executable, "-m", "desktop.cli"], cwd=ROOT, env=_ldd_that_lacks_two(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"pointillist: {ADVICE}\n")


def _display_step(env: dict[str, str], tmp_path: Path, xvfb: bool = False) -> subprocess.CompletedProcess:
    """The self-test with its display step alone, in a child with ``env`` (under Xvfb if asked)."""
    code = ("import sys; from desktop import self_test as t\n"
            "sys.exit(t.run(steps=[s for s in t.STEPS if s[0] == 'window on the display']))")
    command = [sys.executable, "-c", code]
    return subprocess.run([XVFB, "-a", *command] if xvfb else command, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_the_self_test_names_the_missing_packages(tmp_path):
    done = _display_step(_ldd_that_lacks_two(tmp_path), tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].endswith(f"RuntimeError: {ADVICE}")
    assert done.stdout.splitlines()[0].startswith("FAIL window on the display (")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an X display that is not there")
def test_a_window_that_cannot_open_on_the_display_fails_its_step_not_the_self_test(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_QPA", "WAYLAND", "XDG_SESSION"))}
    env.update(DISPLAY=":97", POINTILLIST_HOME=str(tmp_path))  # no X server there: Qt aborts the child
    done = _display_step(env, tmp_path)
    first, last = done.stdout.splitlines()
    assert done.returncode == 1 and last.startswith("self-test: 1 of 1 steps failed")
    assert first.startswith("FAIL window on the display (") and "the window did not open on this display" in first
    assert "could not connect to display :97" in first  # Qt's own words


@pytest.mark.skipif(XVFB is None or not sys.platform.startswith("linux"), reason="needs xvfb-run")
def test_the_window_opens_on_a_real_x_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_QPA", "WAYLAND", "XDG_SESSION"))}
    env["POINTILLIST_HOME"] = str(tmp_path)
    done = _display_step(env, tmp_path, xvfb=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok   window on the display (") and "Qt platform 'xcb'" in done.stdout

"""One run of ``pointillist predict`` in a child process, read line by line as it goes.

A QProcess rather than a thread: the command loads torch, which the window never imports, and a
long run over many slides must not slow labelling. Cancelling asks the command to stop
(``terminate``: SIGTERM, which the command takes as Ctrl+C, closing its Dask workers before it
exits; on Windows WM_CLOSE, which a console program ignores) and kills it when it has not
stopped after ``KILL_AFTER_MS``; the command is resumable, so what it finished is kept and a
later run continues.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from .predict_command import Done, Summary, Total, parse_line

KILL_AFTER_MS = 8000  # closing a local Dask cluster takes a few seconds on a busy machine
ERRORS_KEPT = 8000  # characters of standard error: the end of a traceback or a log says why


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None when the process crashed, was killed or never started
    cancelled: bool
    summary: Path | None
    errors: str  # the end of its standard error, or why it could not start


class PredictRun(QObject):
    total = Signal(int)
    done = Signal(object)  # Done
    finished = Signal(object)  # Outcome

    def __init__(self, command: list[str], parent=None):
        super().__init__(parent)
        self.cancelled = False
        self.summary: Path | None = None
        self.errors = ""
        self.process = QProcess(self)
        self.process.setProgram(command[0])
        self.process.setArguments(command[1:])
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONIOENCODING", "utf-8")  # names with accents survive a Windows console code page
        self.process.setProcessEnvironment(environment)
        self.process.readyReadStandardOutput.connect(self._read_lines)
        self.process.readyReadStandardError.connect(self._read_errors)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._failed_to_start)

    def start(self) -> None:
        self.process.start()
        self.process.closeWriteChannel()  # it reads nothing: anything asking for input gets end-of-file

    def running(self) -> bool:
        return self.process.state() != QProcess.NotRunning

    def cancel(self) -> None:
        """Ask it to stop; kill it if it has not within ``KILL_AFTER_MS``. ``finished`` follows."""
        if not self.running():
            return
        self.cancelled = True
        self.process.terminate()
        QTimer.singleShot(KILL_AFTER_MS, self, self._kill)

    def stop_now(self) -> None:
        """Cancel and wait until the process is gone: for closing, when nothing may outlive the window."""
        self.cancel()
        if self.running() and not self.process.waitForFinished(KILL_AFTER_MS):
            self._kill()
            self.process.waitForFinished(KILL_AFTER_MS)

    def _kill(self) -> None:
        if self.running():
            self.process.kill()

    def _read_lines(self) -> None:
        while self.process.canReadLine():
            self._take(bytes(self.process.readLine().data()).decode("utf-8", "replace"))

    def _take(self, line: str) -> None:
        event = parse_line(line)
        if isinstance(event, Total):
            self.total.emit(event.total)
        elif isinstance(event, Done):
            self.done.emit(event)
        elif isinstance(event, Summary):
            self.summary = event.path

    def _read_errors(self) -> None:
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace")
        self.errors = (self.errors + text)[-ERRORS_KEPT:]

    def _finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_lines()
        rest = bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        if rest:  # a last line without its newline
            self._take(rest)
        self._read_errors()
        normal = exit_status == QProcess.NormalExit
        self.finished.emit(Outcome(exit_code if normal else None, self.cancelled, self.summary, self.errors.strip()))

    def _failed_to_start(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.FailedToStart:  # no 'finished' comes after this one
            reason = f"Could not start {self.process.program()}: {self.process.errorString()}"
            self.finished.emit(Outcome(None, False, None, reason))

"""How a run of ``pointillist predict`` shows its progress: a bar for a person at a terminal, and
plain lines for a program that reads the output (the app's predict dialog parses them):

    inputs TOTAL
    done N/TOTAL NAME :: STATUS        one line per finished input; STATUS is 'ok' or 'failed: reason'
    summary PATH_TO_SUMMARY_CSV

each line flushed at once. ``TOTAL`` counts every input; a resumed run starts ``N`` after the
inputs finished before, so ``N/TOTAL`` is the share of the whole work done.
"""
from __future__ import annotations

import sys
from typing import TextIO


def status_text(status: str) -> str:
    """A row's status as the progress line says it: ``ok`` or ``failed: reason``, on one line."""
    return "ok" if status == "ok" else "failed: " + " ".join(status.split())


class LineProgress:
    def __init__(self, stream: TextIO):
        self.stream = stream

    def _say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def start(self, total: int, finished_before: int) -> None:
        self._say(f"inputs {total}")

    def done(self, n: int, total: int, name: str, status: str) -> None:
        self._say(f"done {n}/{total} {name} :: {status_text(status)}")

    def end(self, summary: str) -> None:
        self._say(f"summary {summary}")


class BarProgress:
    """A tqdm bar (count, rate, time left); failed inputs are printed above it as they come."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.bar = None

    def start(self, total: int, finished_before: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=finished_before, unit="input", file=self.stream, dynamic_ncols=True)

    def done(self, n: int, total: int, name: str, status: str) -> None:
        if status != "ok":
            self.bar.write(f"{name}: {status_text(status)}", file=self.stream)
        self.bar.set_postfix_str(name, refresh=False)
        self.bar.update(1)

    def end(self, summary: str) -> None:
        self.bar.close()
        self.stream.write(f"Summary: {summary}\n")
        self.stream.flush()


def progress_for(stream: TextIO | None = None) -> LineProgress | BarProgress:
    """A bar when ``stream`` (standard output by default) is a terminal, else the plain lines."""
    stream = sys.stdout if stream is None else stream
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)

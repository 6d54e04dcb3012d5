"""TEST FIXTURE, not the real command: a stand-in for ``pointillist predict`` that predicts nothing.

tests/gui/test_predict_dialog.py starts it as a real process in place of the real command, which
loads torch and a model and takes seconds to start. It parses the same command line and prints
the same lines on its standard output, with a small sleep before each input, so the dialog's
progress, failures, summary, cancelling and errors are tested against a real child process.

    python tests/fake_predict_cli.py [--delay SECONDS] [--usage-error MESSAGE] predict PROJECT INPUT... --out DIR
        [--formats ...] [--learner ...] [--workers N] ...

Inputs are files, folders (every file below them) or .txt lists of paths. An input whose name
contains "broken" fails; each other one gets an empty NAME.mask.png in DIR. It writes the
arguments it was given to DIR/arguments.json and DIR/summary.csv, and exits 1 when any input
failed. ``--usage-error`` prints the message on standard error and exits 2, as the real command
does for a bad command line or a project without a model.
"""
import argparse
import csv
import json
import sys
import time
from pathlib import Path

from desktop.engine.predict.progress import LineProgress, status_text


def expand(inputs: list[Path]) -> list[Path]:
    found = []
    for path in inputs:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.suffix == ".txt":
            found += [Path(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            found.append(path)
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--usage-error", default=None)
    parser.add_argument("command", choices=["predict"])
    parser.add_argument("project", type=Path)
    parser.add_argument("inputs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--learner", choices=["fast", "deep"], default="fast")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--formats", default="mask")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.usage_error:
        print(f"pointillist: {args.usage_error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "arguments.json").write_text(json.dumps(sys.argv[sys.argv.index("predict") + 1:]))
    inputs = expand(args.inputs)
    progress = LineProgress(sys.stdout)  # the real command's protocol lines, as the dialog reads them
    progress.start(len(inputs), 0)
    rows = []
    for n, path in enumerate(inputs, 1):
        time.sleep(args.delay)
        if "broken" in path.name:
            status = "cannot read this file: it is not an image"
        else:
            (args.out / f"{path.stem}.mask.png").write_bytes(b"")
            status = "ok"
        rows.append((str(path), status_text(status)))
        progress.done(n, len(inputs), path.name, status)
    with open(args.out / "summary.csv", "w", newline="") as f:
        csv.writer(f).writerows([("input", "status"), *rows])
    progress.end(str(args.out / "summary.csv"))
    return 1 if any(status != "ok" for _, status in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""``pointillist``: the desktop app, and the headless commands beside it."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from desktop.bench_cli import add_bench, run_bench
from desktop.engine.errors import PointillistError


def _add_project_commands(sub) -> None:
    demo = sub.add_parser("demo", help="create (once) and open the demo project")
    demo.add_argument("--dir", type=Path, default=None,
                      help="where the demo project lives (default: the one the window's Demo button opens)")
    demo.add_argument("--no-window", action="store_true", help="only create it")
    new = sub.add_parser("new", help="create a project without opening a window")
    new.add_argument("--images", type=Path, nargs="+", required=True, help="image files and/or folders")
    new.add_argument("--task", choices=["segmentation", "keypoints"], default="segmentation")
    new.add_argument("--classes", help="segmentation: comma-separated class names, e.g. background,nucleus")
    new.add_argument("--keypoints", help="keypoints: comma-separated keypoint names, in order, e.g. nose,ear_l,ear_r")
    new.add_argument("--edges", default=None, help="keypoints: skeleton edges, e.g. nose-ear_l,nose-ear_r")
    new.add_argument("--symmetric", default=None, help="keypoints: left/right pairs, e.g. ear_l:ear_r")
    new.add_argument("--dir", type=Path, required=True, help="the new project folder")
    imp = sub.add_parser("import", help="make a keypoint project from a DeepLabCut project or a COCO keypoints file",
                         description="Make a keypoint project, with its labels, from a DeepLabCut project (its "
                                     "config.yaml; labels read from labeled-data/*/CollectedData_*.csv) or a COCO "
                                     "keypoints file. A malformed file is refused, naming file, row and reason, "
                                     "and no project folder is left behind.")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--dlc", type=Path, metavar="CONFIG.yaml", help="a DeepLabCut project's config.yaml")
    source.add_argument("--coco", type=Path, metavar="FILE.json", help="a COCO keypoints file (needs --images)")
    imp.add_argument("--images", type=Path, metavar="DIR", help="COCO: the folder its file_name entries are in")
    imp.add_argument("--dir", type=Path, required=True, help="the new project folder (new, or empty)")
    imp.set_defaults(usage_error=imp.error)
    export = sub.add_parser("export", help="write masks, keypoint labels and/or the trained model of a project")
    export.add_argument("project", type=Path)
    export.add_argument("--masks", type=Path, default=None, help="folder for one indexed PNG per image")
    export.add_argument("--keypoints", type=Path, default=None, metavar="FILE",
                        help="keypoint projects: the labels as a DeepLabCut .csv or a COCO .json file")
    export.add_argument("--all-frames", action="store_true",
                        help="with --keypoints: every image, also those without labels (default: labelled ones)")
    export.add_argument("--model", type=Path, default=None, help="folder for model.pt + model_card.json")
    export.add_argument("--learner", choices=["fast", "deep"], default="fast")
    export.add_argument("--steps", type=int, default=300,
                        help="training steps when no saved model of this learner exists")


PREDICT_EXIT = """exit status:
  0  every input was predicted (now, or by an earlier run into the same --out)
  1  some inputs failed; summary.csv says why, and the others were predicted
  2  a usage error: no model to predict with, no inputs found, a device that is not there

Run the same command again after a stop (Ctrl+C, a crash, a full disk): it predicts only what
is left. With standard output not a terminal, progress is printed as lines a program can read:
'inputs TOTAL', then 'done N/TOTAL NAME :: ok' (or ':: failed: reason') per input, then
'summary PATH'."""


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: give auto, cpu, cuda, cuda:N or mps")
    return text


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers (1 or more)")
    return int(text)


def _add_predict(sub) -> None:
    predict = sub.add_parser(
        "predict", help="predict masks of images and slides with a project's model, resumably",
        description="Predict a mask of every image and slide given with a model of PROJECT, into --out: "
                    "images get an indexed PNG mask and a colour preview, slides a pyramidal OME-TIFF mask "
                    "(255 = no tissue, not predicted) and QuPath GeoJSON regions; summary.csv has a row "
                    "per input (class shares and areas, or why it failed).",
        epilog=PREDICT_EXIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("project", type=Path, help="the project whose model predicts")
    predict.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                         help="image or slide files, folders (searched with their sub-folders), or .txt "
                              "files listing such paths, one a line")
    predict.add_argument("--out", type=Path, required=True,
                         help="folder for the outputs, summary.csv, manifest.json and the model used (model/)")
    predict.add_argument("--model", default=None, metavar="VERSION|FILE",
                         help="a model version of the project (e.g. 7), a weights file (e.g. "
                              "PROJECT/models/fast-v7.pt) or a model folder (OUT/model of an earlier run); "
                              "default: the newest saved model of --learner")
    predict.add_argument("--learner", choices=["fast", "deep"], default="fast")
    predict.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    predict.add_argument("--workers", type=_at_least_one, default=1,
                         help="worker processes on this machine (more than 1 runs them with Dask)")
    predict.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="run on the Dask cluster of this scheduler, e.g. tcp://host:8786")
    predict.add_argument("--formats", default=None,
                         help="comma-separated, from mask,preview,ome-tiff,geojson (default: all; images "
                              "take mask and preview, slides ome-tiff and geojson)")
    predict.add_argument("--overwrite", action="store_true",
                         help="predict every input again, also those an earlier run finished")


def _demo(args) -> int:
    from desktop import paths
    from desktop.engine.project.demo import create_demo_project

    folder = create_demo_project(args.dir or paths.demo_dir())
    print(f"Demo project: {folder}")
    return 0 if args.no_window else _gui(argparse.Namespace(project=folder))


def _new(args) -> int:
    from desktop.engine.project.setup import create_project, default_classes
    from desktop.engine.project.skeleton import parse_skeleton

    if args.task == "keypoints":
        if not args.keypoints:
            raise SystemExit("A keypoint project needs --keypoints, e.g. --keypoints nose,ear_l,ear_r.")
        skeleton = parse_skeleton(args.keypoints, args.edges, args.symmetric)
        project, scan = create_project(args.dir, args.images, [], "keypoints", skeleton)
    else:
        if not args.classes:
            raise SystemExit("A segmentation project needs --classes, e.g. --classes background,nucleus.")
        project, scan = create_project(args.dir, args.images, default_classes(args.classes.split(",")))
    project.close()
    print(f"Created {args.dir} with {len(scan.readable)} image(s).")
    for path, reason in scan.unreadable:
        print(f"  not added: {path.name}: {reason}")
    return 0


def _import(args) -> int:
    from desktop.engine.keypoints.project_import import import_coco_project, import_dlc_project

    if args.coco is not None and args.images is None:
        args.usage_error("--coco needs --images, the folder its file_name entries are relative to")
    if args.dlc is not None and args.images is not None:
        args.usage_error("--images is for --coco: a DeepLabCut project's frames are in its labeled-data folder")
    if args.dlc is not None:
        result = import_dlc_project(args.dlc, args.dir)
    else:
        result = import_coco_project(args.coco, args.images, args.dir)
    print(result.summary())
    return 0


def _print_problems(engine) -> None:
    """What the engine passed over or could not save (a damaged model file...), for the user."""
    for problem in engine.problems:
        print(problem)
    engine.problems.clear()


def _export(args) -> int:
    from desktop.engine.project.lock import ProjectInUse, ProjectLock
    from desktop.engine.project.store import Project

    if args.masks is None and args.model is None and args.keypoints is None:
        raise SystemExit("Nothing to export: give --masks DIR (segmentation), --keypoints FILE (keypoints) "
                         "and/or --model DIR.")
    if args.all_frames and args.keypoints is None:
        raise SystemExit("--all-frames says which images --keypoints FILE writes: give --keypoints too.")
    lock = ProjectLock(args.project, purpose="'pointillist export'")
    try:
        lock.acquire()
    except ProjectInUse as e:
        print(f"The project is open in {e.holder}: exporting its saved model, without training.")
    try:
        with Project.open(args.project, read_only=not lock.held) as project:
            _export_project(args, project)
    finally:
        lock.release()
    return 0


def _export_project(args, project) -> None:
    if project.task == "keypoints":
        _export_keypoint_project(args, project)
        return
    from desktop.engine.segmentation.engine import SegmentationEngine
    from desktop.engine.segmentation.export import export_masks, export_model

    if args.keypoints is not None:
        raise SystemExit(f"--keypoints writes keypoint labels; '{project.folder.name}' is a segmentation project: "
                         "give --masks DIR and/or --model DIR.")
    engine = _exported_engine(args, SegmentationEngine(project, learner=args.learner, device="cpu"))
    if args.masks is not None:
        result = export_masks(engine, args.masks)
        print(f"Wrote {len(result.written)} mask(s) to {args.masks} ({result.mapping.name} says which "
              "image each one is).")
        for name, reason in result.skipped:
            print(f"  skipped {name}: {reason}")
    if args.model is not None:
        print(f"Wrote {export_model(engine, args.model)} and its model_card.json.")


def _export_keypoint_project(args, project) -> None:
    """Labels first: they need no model, and are written even when training has nothing to learn."""
    from desktop.engine.keypoints.formats import export_summary

    if args.masks is not None:
        raise SystemExit(f"--masks writes segmentation masks; '{project.folder.name}' is a keypoint project: "
                         "give --keypoints FILE and/or --model DIR.")
    if args.keypoints is not None:
        print(export_summary(project, args.keypoints, args.all_frames))
    if args.model is not None:
        from desktop.engine.keypoints.engine import KeypointEngine
        from desktop.engine.keypoints.export import export_model

        engine = _exported_engine(args, KeypointEngine(project, learner=args.learner, device="cpu"))
        print(f"Wrote {export_model(engine, args.model)} and its model_card.json.")


def _exported_engine(args, engine):
    """The engine with the project's newest saved model of its learner; one trained now (and
    saved) when there is none and the project is not open elsewhere."""
    project = engine.project
    loaded = engine.load_latest_weights()
    _print_problems(engine)
    if not loaded and project.read_only:
        raise SystemExit(f"No saved {args.learner} model to export, and the project is open elsewhere: "
                         "train it there, or close it there and export again.")
    if not loaded:
        print(f"No saved {args.learner} model: training one from the project's labels.")
        trained = engine.train(args.steps)
        _print_problems(engine)
        if trained.version is None:
            raise SystemExit("The project has no labels yet: nothing to learn from.")
    return engine


def _predict(args) -> int:
    from desktop.engine.predict.outputs import parse_formats
    from desktop.engine.predict.run import on_workers, run_predict

    formats = parse_formats(args.formats)
    execute = on_workers(args.workers, args.scheduler, args.device) if args.workers > 1 or args.scheduler else None
    signal.signal(signal.SIGTERM, _interrupt)  # a GUI's Cancel: stop as on Ctrl+C, closing any workers
    try:
        report = run_predict(args.inputs, args.out, _predict_model(args), formats, args.device, args.overwrite,
                             execute)
    except KeyboardInterrupt:
        print("Stopped. What was finished is kept: run the same command again to do the rest.", file=sys.stderr)
        return 130
    return 0 if report.failed == 0 else 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _predict_model(args):
    """The model to predict with: ``--model`` when it is a model folder, else a function that
    writes one into OUT/model from the project (read-only: the app may have it open), for the
    model ``--model`` names."""
    from desktop.engine.predict.model_dir import model_choice

    choice = model_choice(args.model)
    if isinstance(choice, Path) and choice.is_dir():
        return choice
    if isinstance(choice, Path) and not choice.is_file():
        raise PointillistError(f"--model {args.model}: there is no such file or folder, and it is not a model "
                               "version number.")
    return lambda out: _write_predict_model(args.project, choice, args.learner, out / "model")


def _write_predict_model(project_dir: Path, choice: int | Path | None, learner: str, folder: Path) -> Path:
    from desktop.engine.predict.model_dir import learner_of, write_model_dir
    from desktop.engine.project.store import Project
    from desktop.engine.segmentation.engine import SegmentationEngine

    with Project.open(project_dir, read_only=True) as project:
        engine = SegmentationEngine(project, learner=learner_of(project, choice, learner), device="cpu")
        write_model_dir(engine, choice if isinstance(choice, int) else None, folder,
                        weights=choice if isinstance(choice, Path) else None)
        for problem in engine.problems:
            print(problem, file=sys.stderr)  # standard output is for the progress lines
    return folder


def _gui(args) -> int:
    from desktop.engine.project.store import check_project_folder

    if args.project is not None:
        try:  # said here, before a window opens only to say it
            check_project_folder(args.project)
        except PointillistError as e:
            print(f"pointillist: {e}", file=sys.stderr)
            return 2
    from desktop.qt_platform import xcb_problem

    problem = xcb_problem()  # asked before Qt aborts on it with a message that names no package
    if problem:
        print(f"pointillist: {problem}", file=sys.stderr)
        return 1
    from desktop.gui.app import run_app

    return run_app(project=args.project)


def main(argv: list[str] | None = None) -> int:
    # Belt and braces: nothing here asks a model hub for weights (timm runs with pretrained=False),
    # and this keeps the hub client that timm imports from ever trying.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = argparse.ArgumentParser(prog="pointillist", description=__doc__)
    sub = commands.add_subparsers(dest="command", required=True)
    add_bench(sub)
    _add_project_commands(sub)
    _add_predict(sub)
    if argv and argv[0] in sub.choices:
        args = commands.parse_args(argv)
        run = {"bench": run_bench, "demo": _demo, "new": _new, "import": _import, "export": _export,
               "predict": _predict}[args.command]
        try:
            return run(args)
        except PointillistError as e:
            print(f"pointillist: {e}", file=sys.stderr)
            return 2
    gui = argparse.ArgumentParser(prog="pointillist", description=__doc__,
                                  epilog=f"commands: {', '.join(sub.choices)} (see 'pointillist COMMAND -h')")
    gui.add_argument("project", nargs="?", type=Path, help="a project folder to open")
    checks = gui.add_mutually_exclusive_group()
    checks.add_argument("--self-test", action="store_true",
                        help="check the weights, the demo, training, prediction, export and the window, "
                             "offscreen and on the display if there is one; exit 1 if any step fails")
    checks.add_argument("--time-to-window", action="store_true",
                        help="open the window offscreen on a fresh demo project, print how long after the "
                             "process start it was shown, and exit")
    checks.add_argument("--window-check", action="store_true", help=argparse.SUPPRESS)  # the self-test's child
    args = gui.parse_args(argv)
    if args.self_test or args.time_to_window:
        if args.project is not None:
            gui.error("--self-test and --time-to-window make their own demo project: give no PROJECT")
        from desktop import self_test

        return self_test.run() if args.self_test else self_test.time_to_window()
    if args.window_check:
        from desktop import self_test

        return self_test.window_check()
    return _gui(args)


if __name__ == "__main__":
    sys.exit(main())

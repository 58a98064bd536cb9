"""The ``synthgate`` command: gate a release, verify a clearance, build the demo, compare releases, train a reference model.

Exit codes (docs/ci.md): ``gate`` returns pytest's (0 cleared, 1 blocked,
2 interrupted, 3 internal error, 4 usage or config error, 5 no tests collected)
plus 6 when nothing failed but the verdict is incomplete; ``verify`` returns
0 when the release matches its record, 1 when it does not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from synthgate import __version__
from synthgate.recorder import GATE_INCOMPLETE

VERIFY_OK, VERIFY_MISMATCH, VERIFY_USAGE = 0, 1, 2
USAGE, INTERNAL = 4, 3

GATE_CODES = """\
  0 cleared, 1 blocked (a criterion failed), 2 interrupted, 3 internal error,
  4 usage or config error, 5 no tests collected, 6 incomplete (nothing failed, but
  not every criterion was judged: skipped or deselected checks; no clearance record)
"""
VERIFY_CODES = "  0 the release matches its clearance record, 1 it does not, 2 usage error\n"
OTHER_CODES = "  0 done, 3 internal error, 4 usage or config error\n"
EPILOG = f"""\
exit codes of synthgate gate:
{GATE_CODES}exit codes of synthgate verify:
{VERIFY_CODES}exit codes of synthgate demo, compare and train-reference:
{OTHER_CODES}
Release names are looked up in --releases-dir, then releases/ below the current
directory, then the demo recipes shipped with synthgate; a folder with release.toml works anywhere.
"""


class UsageProblem(Exception):
    """A problem with what the user asked for (bad name, missing file, bad config): no traceback."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line exits with the command's documented usage code."""

    usage_code = USAGE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(self.usage_code, f"{self.prog}: error: {message}\n")


def _cache_dir(value: str | None) -> Path:
    from synthgate.storage import default_cache_dir, unusable_cache

    cache = Path(value) if value else default_cache_dir()
    if unusable_cache(cache):
        raise UsageProblem(unusable_cache(cache))
    return cache


def _locate(name: str, releases_dir: str | None, cache: str | None):
    from synthgate.catalog import ReleaseNotFound, default_search_path, resolve

    extra = [Path(releases_dir)] if releases_dir else []
    try:
        return resolve(name, default_search_path(Path.cwd(), extra), _cache_dir(cache))
    except ReleaseNotFound as error:
        raise UsageProblem(str(error)) from None


def _release_folder(name: str, releases_dir: str | None, cache: str | None) -> Path:
    return _locate(name, releases_dir, cache).folder


# --------------------------------------------------------------------------- gate


# pytest options `synthgate gate` sets: passed again they would gate another release or move the verdict it reads.
SET_BY_GATE = ("--release", "--gate-summary", "--html", "--junitxml", "--rootdir", "--pyargs", "--synthgate-cache")


def cmd_gate(args: argparse.Namespace, pytest_args: list[str]) -> int:
    import pytest

    given = sorted({arg.split("=", 1)[0] for arg in pytest_args} & set(SET_BY_GATE))
    if given:
        raise UsageProblem(f"{', '.join(given)}: set by `synthgate gate` itself (the release is its first argument, "
                           "the outputs go to --reports); run pytest directly to choose them")
    stem = Path(args.reports) / Path(args.release).name
    summary_file = Path(f"{stem}.json")
    summary_file.unlink(missing_ok=True)  # never read an earlier run's verdict
    command = [
        "--pyargs", "synthgate.checks", f"--rootdir={Path.cwd()}", "-p", "no:cacheprovider", f"--release={args.release}",
        f"--html={stem}.html", "--self-contained-html", f"--junitxml={stem}.xml", f"--gate-summary={stem}.json",
        *([f"--clearance={args.clearance}"] if args.clearance else []),
        *([f"--releases-dir={args.releases_dir}"] if args.releases_dir else []),
        *([f"--synthgate-cache={args.cache}"] if args.cache else []),
        *([f"--policy={args.policy}"] if args.policy else []),
        *pytest_args,
    ]
    code = int(pytest.main(command))
    if not summary_file.exists():  # a usage error or an internal error: pytest's own code, never a clearance
        return code or GATE_INCOMPLETE
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    if summary["verdict"] == "cleared":
        return code  # 0, unless a test outside the gate failed
    print(f"synthgate: verdict {summary['verdict']}: {'; '.join(summary['verdict_reasons'])}", file=sys.stderr)
    return 1 if summary["verdict"] == "blocked" else GATE_INCOMPLETE


# --------------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    from synthgate.clearance import RecordError, differences, read_record
    from synthgate.config.release import CLEARANCE_NAME
    from synthgate.config.toml import ConfigError
    from synthgate.gate.policy import find_policy

    located = _locate(args.release, args.releases_dir, args.cache)
    root = located.folder
    if args.record:
        record_file = Path(args.record)
    elif (root / CLEARANCE_NAME).is_file():
        record_file = root / CLEARANCE_NAME
    else:
        record_file = Path(args.reports) / f"{Path(args.release).name}.clearance.json"
    try:
        record = read_record(record_file)
        problems = differences(record, root, find_policy(args.policy, Path.cwd(), located.policy))
    except (RecordError, ConfigError) as error:
        raise UsageProblem(str(error)) from None
    if problems:
        print(f"MISMATCH: release {root} does not match the clearance record {record_file}:")
        for problem in problems:
            print(f"  {problem}")
        return VERIFY_MISMATCH
    print(f"OK: release {record['release']['name']} matches its clearance record {record_file} "
          f"(content hash {record['release']['content_hash']})")
    return VERIFY_OK


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from synthgate.demo import world as demo

    world = demo.build_world(_cache_dir(args.cache))
    print(f"demo world: {world}")
    print("releases (gate one with `synthgate gate NAME`):")
    names = sorted(demo.recipe_files())
    width = max(map(len, names))
    for name in names:
        expect = demo.expected_outcome(name)
        outcome = "cleared" if expect.get("cleared") else "blocked by " + ", ".join(expect.get("blocked_by", []))
        print(f"  {name:<{width}}  {world / 'releases' / name}  (expected: {outcome})")
    return 0


# --------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from synthgate.config.release import load_release
    from synthgate.evaluation.comparison import compare_sources
    from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
    from synthgate.reporting.gather import plain

    options = GateOptions(cache_dir=_cache_dir(args.cache), device=args.device)
    evaluations = [ReleaseEvaluation(load_release(_release_folder(name, args.releases_dir, args.cache)), options)
                   for name in args.releases]
    result = compare_sources(evaluations, seed=evaluations[0].release.statistics.seed)
    counts = np.bincount(result.labels, minlength=len(result.sources))
    width = max(len(name) for name in result.sources)
    print("Which source does each image come from? A classifier on the evaluating model's features, "
          "patient-grouped cross-validation.\nOne-vs-rest AUROC per source (0.5: indistinguishable from the others):")
    for k, name in enumerate(result.sources):
        print(f"  {name:<{width}}  {counts[k]:>6} images  AUROC {result.auroc[name]}")
    print("Confusion matrix (rows: true source, columns: predicted, in the order above):")
    for k, name in enumerate(result.sources):
        print(f"  {name:<{width}}  " + " ".join(f"{n:>6}" for n in result.confusion[k]))
    if args.json:
        rows = {name: {"images": int(counts[k]), "auroc": dataclasses.asdict(result.auroc[name]), "confusion": result.confusion[k].tolist()}
                for k, name in enumerate(result.sources)}
        Path(args.json).write_text(json.dumps(plain({"sources": rows}), indent=2) + "\n")
    return 0


# --------------------------------------------------------------------------- train-reference


def _training_data(args: argparse.Namespace):
    """(collection, model outputs, settings defaults, whether it is a release's reference train) from --release or --data."""
    from synthgate.config.release import load_release
    from synthgate.data import loading
    from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
    from synthgate.models.plan import ReferenceModelSpec, TrainSettings

    if args.release:
        if args.dataset:
            raise UsageProblem("--dataset goes with --data: a release's reference data names its data sets in release.toml")
        evaluation = ReleaseEvaluation(load_release(_release_folder(args.release, args.releases_dir, args.cache)),
                                       GateOptions(cache_dir=_cache_dir(args.cache)))
        plan = evaluation.model_plan
        defaults = plan.settings if isinstance(plan, ReferenceModelSpec) else TrainSettings()
        return evaluation.reference_train, evaluation.model_outputs, defaults, True
    if not args.dataset:
        raise UsageProblem("--data needs --dataset NAME: the data sets these images come from go on the model card (leakage checks read it)")
    folder = Path(args.data)
    collection = loading.from_manifest(folder, folder.name, tuple(args.dataset))
    return collection, collection.classes, TrainSettings(), False


def cmd_train_reference(args: argparse.Namespace) -> int:
    import dataclasses

    from synthgate.models.card import card_path
    from synthgate.models.embedding import pick_device
    from synthgate.models.loading import save_checkpoint
    from synthgate.models.plan import backbone_collection
    from synthgate.models.training import trained_model

    collection, outputs, defaults, reference_train = _training_data(args)
    chosen = {key: getattr(args, key) for key in ("size", "epochs", "seed", "patience") if getattr(args, key) is not None}
    settings = dataclasses.replace(defaults, **chosen)
    if reference_train:  # the probe pool stays new to the model, as under [model] train = "reference"
        collection = backbone_collection(collection, settings.seed)
    device = pick_device(args.device)
    print(f"training DenseNet121 on {collection.name}: {len(collection)} images, outputs {', '.join(outputs)}, "
          f"{settings.size} px, up to {settings.epochs} epochs, seed {settings.seed}, on {device}", file=sys.stderr)
    model = trained_model(collection, tuple(outputs), settings, _cache_dir(args.cache), device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    card = save_checkpoint(model.module, model.card, out)
    aurocs = card.validation_metrics.get("auroc", {})
    print(f"checkpoint: {out}\nmodel card: {card_path(out)}")
    print(f"trained on: {', '.join(card.training_datasets)} (fingerprint {card.training_fingerprint[:16]}…)")
    print("validation AUROC: " + ", ".join(f"{name} {value:.3f}" for name, value in aurocs.items()))
    print(f'use it in release.toml:\n  [model]\n  checkpoint = "{out.resolve()}"')
    return 0


# --------------------------------------------------------------------------- the parser


def build_parser() -> Parser:
    parser = Parser(
        prog="synthgate",
        description="A quality gate for releases of synthetic chest X-rays.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.usage_code = 2
    parser.add_argument("--version", action="version", version=f"synthgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.subcommands = {}

    def add_lookup(sub):
        sub.add_argument("--releases-dir", metavar="DIR", help="extra folder of releases, searched first")
        sub.add_argument("--cache", metavar="DIR", help="synthgate cache (default $SYNTHGATE_CACHE or ~/.cache/synthgate)")

    def add(name: str, summary: str, description: str, codes: str, **kwargs) -> Parser:
        parser.subcommands[name] = commands.add_parser(
            name, help=summary, description=description, epilog="exit codes:\n" + codes,
            formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs,
        )
        return parser.subcommands[name]

    gate = add("gate", "run the quality gate on a release", """\
Run the gate's checks (`pytest --pyargs synthgate.checks --release=RELEASE`), writing the HTML report, JUnit XML
and JSON summary to REPORTS/NAME.html, .xml and .json (tables and scores beside
them) and, when the release is cleared, its clearance record to
REPORTS/NAME.clearance.json. Other options go to pytest: `-n 2` (pytest-xdist),
or `-m integrity` (a partial run, which is never cleared).""", GATE_CODES,
               usage="synthgate gate RELEASE [--reports DIR] [--clearance PATH] [...] [PYTEST OPTION ...]")
    gate.add_argument("release", metavar="RELEASE", help="release name or folder with release.toml")
    gate.add_argument("--reports", metavar="DIR", default="reports", help="where the report files go (default: reports)")
    gate.add_argument("--clearance", metavar="PATH", help="where to write the clearance record (default: REPORTS/NAME.clearance.json)")
    gate.add_argument("--policy", metavar="PATH", help="the gate policy (default: ./gate-policy.toml, else built in)")
    add_lookup(gate)

    verify = add("verify", "check that a release still matches its clearance record", """\
Hash every file of the release again and compare with the clearance record the
gate wrote. Names each changed, added or removed file, a changed manifest or
release.toml, and a record that was edited after it was written.""", VERIFY_CODES)
    verify.usage_code = VERIFY_USAGE
    verify.add_argument("release", metavar="RELEASE", help="release name or folder with release.toml")
    verify.add_argument("--record", metavar="PATH", help="the clearance record (default: RELEASE/clearance.json if present, "
                                                         "else REPORTS/NAME.clearance.json)")
    verify.add_argument("--reports", metavar="DIR", default="reports", help="where `synthgate gate` wrote its files (default: reports)")
    verify.add_argument("--policy", metavar="PATH", help="the gate policy it was cleared under (default: as `synthgate gate`)")
    add_lookup(verify)

    demo = add("demo", "build the demo world and list its releases", """\
Build the demo's phantom data and releases into the cache (once; later calls
return at once) and list the releases with the verdict each must get.""", OTHER_CODES)
    demo.add_argument("--cache", metavar="DIR", help="synthgate cache (default $SYNTHGATE_CACHE or ~/.cache/synthgate)")

    compare = add("compare", "tell real images and several releases apart (multi-class detectability)", """\
Real images (the first release's generator source images, else its reference
images) and each release's synthetic images, told apart by one classifier on the
evaluating model's features: a one-vs-rest AUROC per source and the confusion
matrix. The releases must share their evaluating model; nothing is gated.""", OTHER_CODES)
    compare.add_argument("releases", metavar="RELEASE", nargs="+", help="release names or folders with release.toml")
    compare.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    compare.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    add_lookup(compare)

    train = add("train-reference", "train a leakage-free reference DenseNet121", """\
Train DenseNet121 (torchxrayvision's form) on real labelled images that the
generator never saw; write the checkpoint and its model card (PATH.card.json).
Train on a release's [reference] train data with its class mapping (settings
default to its [model] table), or on a folder with manifest.csv. A model trained
on the same images with the same settings is reused from the cache.""", OTHER_CODES)
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--release", metavar="RELEASE", help="train on this release's reference train data (its backbone part: the probe pool stays unseen)")
    source.add_argument("--data", metavar="FOLDER", help="train on a folder with manifest.csv (path, patient_id, 0/1 class columns)")
    train.add_argument("--dataset", metavar="NAME", action="append", help="with --data: the data set the images come from (repeatable)")
    train.add_argument("--out", metavar="PATH", required=True, help="checkpoint to write")
    train.add_argument("--size", type=int, help="input size in pixels (default 64, or the release's)")
    train.add_argument("--epochs", type=int, help="maximum epochs (default 20, or the release's)")
    train.add_argument("--patience", type=int, help="stop after this many epochs without validation gain (default 5)")
    train.add_argument("--seed", type=int, help="seed (default 0, or the release's)")
    train.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    add_lookup(train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if extra and args.command != "gate":
        parser.subcommands[args.command].error(f"unrecognised arguments: {' '.join(extra)}")
    run = {"gate": lambda: cmd_gate(args, extra), "verify": lambda: cmd_verify(args), "demo": lambda: cmd_demo(args),
           "compare": lambda: cmd_compare(args), "train-reference": lambda: cmd_train_reference(args)}[args.command]
    usage_code = VERIFY_USAGE if args.command == "verify" else USAGE
    from synthgate.config.toml import ConfigError
    from synthgate.models.errors import ModelLoadError

    try:
        return run()
    except (UsageProblem, ConfigError, ModelLoadError) as error:
        print(f"synthgate {args.command}: error: {error}", file=sys.stderr)
        return usage_code
    except Exception:
        traceback.print_exc()
        print(f"synthgate {args.command}: internal error (a bug: please report it with the traceback above)", file=sys.stderr)
        return INTERNAL


if __name__ == "__main__":
    sys.exit(main())

"""A study on real data: split a labelled data set by patient, derive releases from it, gate them.

``studies/kermany/study.toml`` (beside this script) names a real data set (any
format of docs/adapters.md; here Kermany's class folders), how to split it by
patient, the release.toml every derived release shares, and the releases: a perfect
stand-in generator (real images the generator's source never contained) that must
be cleared, and defects that must be blocked, each with its ``[expect]``. What
a release must pass is the study's gate policy (``policy = "policy.toml"``, beside
it), which every gate run of the study is given with ``--policy``.

    python studies/kermany/study.py --size 64 --cache DIR    # build; print the release folders
    python studies/kermany/study.py --size 128 --run         # and gate each one: reports/kermany/128px/

Patients are split into four parts: the generator's training images (``source``,
what ``[release.source_images]`` points at), images the generator "made"
(``held_back``: the stand-in's pool, never in ``source``), and the reference
train and test splits (what the evaluating model learns from and is scored on).
Patients linked by byte-identical files are kept together; within a part, only
the first of byte-identical files is written and the rest are counted.
Everything is built into the cache (never into git) with synthgate's own writers
(``synthgate.demo.cohort``, ``synthgate.demo.world.dump_toml``, ``synthgate.storage.build_once``)
and the demo's defect helpers (``synthgate.demo.defects``): see ``build.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUDIES = HERE.parent
if not __package__:  # run as a script: import this folder as the package ``kermany`` (from studies/)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(STUDIES))

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from kermany.build import DEFECTS, PARTS, build_study, release_folders  # noqa: E402
from synthgate.config.release import POLICY_SECTIONS, DataRef  # noqa: E402
from synthgate.config.toml import ConfigError, Table, read_toml  # noqa: E402

# Release keys the builder writes (from the study's names, parts and size); the template must leave them out.
BUILDER_KEYS = {"release": ("name", "description", "source_datasets", "source_images"), "images": None, "reference": None}


def study_file() -> Path:
    """The study file beside this script."""
    return HERE / "study.toml"


# --------------------------------------------------------------------------- the study file


@dataclass(frozen=True)
class Study:
    file: Path
    name: str
    seed: int
    size: int
    patients: float  # fraction of the patient groups used (the CI profile uses fewer)
    gate_args: tuple[str, ...]  # extra arguments for each gate run (a profile's choice)
    policy: Path  # the gate policy of every gate run (--policy)
    data: DataRef
    fractions: dict[str, float]  # part -> fraction of the patient groups
    source_dataset: str
    reference_dataset: str
    template: dict  # what every release.toml holds besides the builder's keys
    releases: dict[str, dict]  # name -> {"description", "defect" (or None), "expect", "labelled", "images" (or None)}

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.template["classes"])


def load_study(file: Path | None = None, size: int | None = None, patients: float | None = None,
               profile: str | None = None, data: Path | None = None, policy: Path | None = None) -> Study:
    """Read and check the study file; ``profile`` (e.g. ``"ci"``) takes size and patients from that table."""
    from synthgate.gate.policy import load_policy

    file = Path(file or study_file()).resolve()
    top = Table(read_toml(file), file)
    name, seed = top.get("name", str), top.get("seed", int)
    policy_file = Path(policy).resolve() if policy else top.path("policy", file.parent)
    if not policy_file.is_file():
        raise top.error("policy", f"{policy_file} does not exist")
    load_policy(policy_file)  # a bad policy is one clear error now, not four failed gate runs later
    chosen = {"size": top.get("size", int), "patients": top.get("patients", float, 1.0), "gate_args": []}
    profiles = top.table("profiles", {})
    for profile_name in list(profiles.data):
        table = profiles.table(profile_name)
        values = {"size": table.get("size", int, chosen["size"]), "patients": table.get("patients", float, chosen["patients"]),
                  "gate_args": table.get_list("gate_args", str, [])}
        table.finish()
        if profile_name == profile:
            chosen.update(values)
    if profile is not None and profile not in profiles.data:
        raise profiles.error(profile, f"no such profile (found: {', '.join(profiles.data) or 'none'})")
    size, patients = size or chosen["size"], patients or chosen["patients"]
    if size < 16 or not 0 < patients <= 1:
        raise top.error("size" if size < 16 else "patients", f"size >= 16 and 0 < patients <= 1, got {size}, {patients}")

    data_ref = _data_ref(top.table("data"), file.parent, data)
    split = top.table("split")
    fractions = {part: split.get(part, float) for part in PARTS}
    split.finish()
    if any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-9:
        raise split.error("", f"fractions of {', '.join(PARTS)} must be positive and sum to 1, got {fractions}")
    names = top.table("datasets")
    source_dataset, reference_dataset = names.get("source", str), names.get("reference", str)
    names.finish()
    if source_dataset == reference_dataset:
        raise names.error("reference", "name the reference data differently from the generator's source (leakage rules)")

    template = top.get("release", dict)
    for section, keys in BUILDER_KEYS.items():
        present = template.get(section, {}) if keys else ({section: 1} if section in template else {})
        for key in keys or [section]:
            if key in present:
                raise top.error(f"release.{section}" + (f".{key}" if keys else ""), "written by the study builder: leave it out")
    for section in POLICY_SECTIONS:
        if section in template:
            raise top.error(f"release.{section}", "how the gate measures is the gate policy's: set it in the policy file")
    if "classes" not in template or "model" not in template:
        raise top.error("release", "the release template needs [release.classes] and [release.model]")
    data_classes = tuple(data_ref.options.get("classes", {}))
    if tuple(template["classes"]) != data_classes:
        raise top.error("release.classes", f"must be the data's classes {list(data_classes)}")

    releases = {}
    table = top.table("releases")
    for release_name in list(table.data):
        entry = table.table(release_name)
        defect = entry.get("defect", dict, None)
        if defect is not None and defect.get("kind") not in DEFECTS:
            raise entry.error("defect.kind", f"{defect.get('kind')!r} is not one of {sorted(DEFECTS)}")
        expect = _expect(entry)
        per_profile = entry.table("profiles", {})  # where a check's outcome depends on the scale, or it cannot run
        skipped = False
        for profile_name in list(per_profile.data):
            if profile_name not in profiles.data:
                raise per_profile.error(profile_name, f"no such profile (found: {', '.join(profiles.data) or 'none'})")
            own = per_profile.table(profile_name)
            if own.get("skip", bool, False):  # e.g. a delivery larger than the profile's held-back images
                skipped = skipped or profile_name == profile
            elif profile_name == profile:
                expect = _expect(own)
            else:
                _expect(own)
            own.finish()
        images = entry.get("images", int, None)  # a smaller delivery: at most this many of the held-back images
        if images is not None and images < 1:
            raise entry.error("images", f"must be at least 1, got {images}")
        release = {"description": entry.get("description", str), "defect": defect, "expect": expect,
                   "labelled": entry.get("labelled", bool, True), "images": images}
        entry.finish()
        if not skipped:
            releases[release_name] = release
    table.finish()
    top.finish()
    return Study(file, name, seed, size, patients, tuple(chosen["gate_args"]), policy_file, data_ref, fractions, source_dataset,
                 reference_dataset, template, releases)


def _expect(table: Table) -> dict:
    expect = table.get("expect", dict)
    if not isinstance(expect.get("cleared"), bool) or not expect["cleared"] and not expect.get("blocked_by"):
        raise table.error("expect", "say cleared = true, or cleared = false with blocked_by = [checks]")
    return expect


def _data_ref(table: Table, base: Path, override: Path | None) -> DataRef:
    """The ``[data]`` table: a real data set in any synthgate format (``path``, ``format``, ``datasets``, options)."""
    path = Path(override).resolve() if override else table.path("path", base)
    options = {k: v for k, v in table.data.items() if k not in ("path", "format", "datasets")}
    ref = DataRef(path=path, format=table.get("format", str, "manifest"), datasets=tuple(table.get_list("datasets", str)),
                  options=options, config_file=table.file, config_key=table.prefix)
    if not path.exists():
        raise table.error("path", f"{path} does not exist")
    return ref


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python studies/kermany/study.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, help="study file (default: study.toml beside this script)")
    parser.add_argument("--size", type=int, help="image size in pixels (default: the study's size)")
    parser.add_argument("--patients", type=float, help="fraction of the patient groups to use (default: all)")
    parser.add_argument("--profile", help="take size and patients from [profiles.NAME] of the study file (e.g. ci)")
    parser.add_argument("--data", type=Path, help="the data set's folder, instead of [data] path")
    parser.add_argument("--policy", type=Path, help="the gate policy for every gate run, instead of the study's policy")
    parser.add_argument("--cache", type=Path, help="cache folder (default $SYNTHGATE_CACHE, else ~/.cache/synthgate)")
    parser.add_argument("--run", action="store_true", help="gate every release and write the results")
    parser.add_argument("--reports", type=Path, help="where --run writes (default reports/<study>/<size>px)")
    parser.add_argument("--gate-arg", action="append", default=[], help="extra argument for each gate run (repeatable)")
    args = parser.parse_args(argv)
    from synthgate.storage import default_cache_dir

    cache = (args.cache or default_cache_dir()).resolve()
    try:
        study = load_study(args.study, args.size, args.patients, args.profile, args.data, args.policy)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    start = time.perf_counter()
    root = build_study(cache, study)
    print(f"study: {root} (built or found in {time.perf_counter() - start:.0f} s)")
    for name, folder in release_folders(root).items():
        print(f"  {name}: {folder}")
    if not args.run:
        return 0
    from kermany.gating import run_study

    reports = (args.reports or Path("reports") / study.name / f"{study.size}px").resolve()
    results = run_study(root, cache, reports, study.policy, [*study.gate_args, *args.gate_arg])
    print(f"results: {reports / 'results.md'} ({time.perf_counter() - start:.0f} s in all)")
    return 0 if all(r["as_expected"] for r in results["releases"]) else 1


if __name__ == "__main__":
    sys.exit(main())

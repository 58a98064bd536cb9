"""Unlabelled releases (an unconditional generator's): the config rules, the integrity findings, and what
the policy requires of them (never a label-based criterion)."""

from __future__ import annotations

import numpy as np
import pytest

from synthgate.config.release import load_release
from synthgate.config.toml import ConfigError
from synthgate.data.collection import UNLABELLED
from synthgate.demo import phantoms
from synthgate.demo.cohort import Item, write_collection
from synthgate.evaluation.integrity import scan_release
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
from synthgate.gate.criteria import NOT_APPLICABLE_UNLABELLED, REGISTRY
from synthgate.gate.policy import (
    DEFAULT_POLICY,
    applies_unlabelled,
    apply,
    load_policy,
    missing_inputs,
    not_applicable,
    requirements,
)
from tests.conftest import write_handmade_release

UNLABELLED_TOML = """\
[release]
name = "unconditional"
generator = "an unconditional generator"
source_datasets = ["phantom-site-a"]
labelled = false

[images]
width = 64
height = 64
mode = "L"

[classes."soft tissue mass"]
model_output = "Mass"

[classes.cardiomegaly]
model_output = "Cardiomegaly"
"""
CLASSES = ("soft tissue mass", "cardiomegaly")
LABEL_BASED = {"pretrained_auroc", "synthetic_minus_real_auroc", "train_on_synthetic_auroc", "mix_minus_real_auroc",
               "pretrain_minus_real_auroc", "class_minimum_counts"}


def write_unlabelled(root, n: int = 6, columns: dict | None = None, toml: str = UNLABELLED_TOML):
    """An unlabelled release on disk; ``columns`` adds manifest columns (name -> value) to every row."""
    items = [Item(f"images/{k:03d}.png", phantoms.render(100 + k, site="site-a"), dict(columns or {}), f"p{k}", k)
             for k in range(n)]
    write_collection(root, items, with_patients=False, with_labels=bool(columns))
    (root / "release.toml").write_text(toml)
    return root


def _policy(tmp_path, text: str):
    path = tmp_path / "gate-policy.toml"
    path.write_text(text)
    return load_policy(path)


# --------------------------------------------------------------------------- release.toml and manifest


def test_an_unlabelled_release_loads_with_its_classes_and_no_label_counts(tmp_path):
    release = load_release(write_unlabelled(tmp_path / "r"))
    assert release.labelled is False
    assert release.class_names == CLASSES
    assert [c.model_output for c in release.classes] == ["Mass", "Cardiomegaly"]
    assert all(c.min_count == 0 for c in release.classes)
    assert release.manifest.label_columns == ()


def test_a_release_is_labelled_unless_it_says_otherwise(tmp_path):
    assert load_release(write_handmade_release(tmp_path / "r")).labelled is True


@pytest.mark.parametrize("old, new, key", [
    ('model_output = "Mass"\n', 'model_output = "Mass"\nmin_count = 20\n', "classes.soft tissue mass.min_count"),
    ("labelled = false", 'labelled = "no"', "release.labelled"),
])
def test_what_an_unlabelled_release_cannot_say_is_refused_naming_file_and_key(tmp_path, old, new, key):
    root = write_unlabelled(tmp_path / "r", toml=UNLABELLED_TOML.replace(old, new))
    with pytest.raises(ConfigError) as error:
        load_release(root)
    assert error.value.key == key and error.value.file.name == "release.toml"


def test_an_unlabelled_manifest_without_class_columns_has_no_label_findings(tmp_path):
    report = scan_release(load_release(write_unlabelled(tmp_path / "r")))
    assert report.ok, report.problems


def test_an_unlabelled_release_without_images_is_a_finding_naming_the_manifest(tmp_path):
    problems = scan_release(load_release(write_unlabelled(tmp_path / "r", n=0))).problems
    assert {check: [(o.file, o.problem) for o in found] for check, found in problems.items() if found} == {
        "manifest_files": [("manifest.csv", "lists no images: a release holds at least one")]}


def test_a_class_column_in_an_unlabelled_release_is_a_finding_naming_file_and_column(tmp_path):
    root = write_unlabelled(tmp_path / "r", columns={"cardiomegaly": 0, "comment": 1})
    problems = scan_release(load_release(root)).problems
    assert not problems["class_counts"]
    found = {o.file: [] for o in problems["labels"]}
    for offence in problems["labels"]:
        found[offence.file].append(offence.problem)
    assert list(found) == ["manifest.csv"]
    cardiomegaly, comment = found["manifest.csv"]
    assert "'cardiomegaly' is a class column" in cardiomegaly and "labelled = false" in cardiomegaly
    assert "'comment'" in comment and "unlabelled" in comment


def test_a_labelled_release_missing_a_class_column_is_a_finding_naming_file_and_column(tmp_path):
    root = write_handmade_release(tmp_path / "r")
    config = root / "release.toml"
    config.write_text(config.read_text() + '\n[classes.effusion]\nmodel_output = "Effusion"\nmin_count = 0\n')
    problems = scan_release(load_release(root)).problems["labels"]
    assert [(o.file, "'effusion' has no manifest column" in o.problem) for o in problems] == [("manifest.csv", True)]


def test_the_evaluation_of_an_unlabelled_release_carries_no_labels(tmp_path):
    evaluation = ReleaseEvaluation(load_release(write_unlabelled(tmp_path / "r")), GateOptions(cache_dir=tmp_path))
    synthetic = evaluation.synthetic
    assert len(synthetic) == 6 and synthetic.classes == CLASSES
    assert not synthetic.labelled and (synthetic.labels == UNLABELLED).all()
    assert synthetic.subset([0, 1]).labelled is False
    assert evaluation.class_counts == {}


# --------------------------------------------------------------------------- what the policy requires


def test_the_registry_marks_exactly_the_label_based_criteria():
    assert {name for name, spec in REGISTRY.items() if not applies_unlabelled(spec)} >= LABEL_BASED
    for name in ("predicted_prevalence_difference", "frechet_within_real_spread", "frechet_distance_near_real_baseline",
                 "not_detectable_as_synthetic", "no_mode_collapse", "no_memorised_training_images",
                 "no_copies_of_reference_images", "images_decode", "labels_in_vocabulary"):
        assert applies_unlabelled(REGISTRY[name]), name
    assert {spec.family for spec in REGISTRY.values() if not applies_unlabelled(spec)} <= {"integrity", "fidelity",
                                                                                            "utility"}
    fidelity_and_utility = [spec for spec in REGISTRY.values() if spec.family in ("fidelity", "utility")]
    assert fidelity_and_utility and not any(applies_unlabelled(spec) for spec in fidelity_and_utility)


def test_label_based_criteria_are_not_applicable_to_an_unlabelled_release_and_the_rest_are_required(tmp_path):
    policy = load_policy(DEFAULT_POLICY)
    release = load_release(write_unlabelled(tmp_path / "r"))
    required = {r.key for r in requirements(policy, release)}
    skipped = not_applicable(policy, release)
    assert all(applies_unlabelled(r.spec) for r in requirements(policy, release))
    assert {f"predicted_prevalence_difference[{c}]" for c in CLASSES} <= required
    assert {"frechet_within_real_spread", "not_detectable_as_synthetic", "no_mode_collapse",
            "no_copies_of_reference_images", "images_decode", "labels_in_vocabulary"} <= required
    assert "class_minimum_counts" not in required
    assert skipped and all(not applies_unlabelled(r.spec) for r in skipped)
    assert {"class_minimum_counts", "synthetic_minus_real_auroc[cardiomegaly]",
            "mix_minus_real_auroc[soft tissue mass]"} <= {r.key for r in skipped}
    assert not {r.key for r in skipped} & required
    assert missing_inputs(REGISTRY["pretrained_auroc"], release) == ["reference", "model", "labels"]
    assert NOT_APPLICABLE_UNLABELLED == "not applicable: the release is unlabelled"


def test_a_labelled_release_gets_every_criterion_and_none_is_not_applicable(tmp_path):
    policy = load_policy(DEFAULT_POLICY)
    release = load_release(write_handmade_release(tmp_path / "r"))
    required = {r.key for r in requirements(policy, release)}
    assert "class_minimum_counts" in required and "synthetic_minus_real_auroc[soft tissue mass]" in required
    assert "predicted_prevalence_difference[soft tissue mass]" in required
    assert not_applicable(policy, release) == []


def test_a_release_requiring_a_label_based_criterion_while_unlabelled_is_an_error(tmp_path):
    root = write_unlabelled(tmp_path / "r", toml=UNLABELLED_TOML + '\n[criteria.cardiomegaly]\npretrained_auroc = 0.9\n')
    with pytest.raises(ConfigError) as error:
        requirements(load_policy(DEFAULT_POLICY), load_release(root))
    assert error.value.key == "criteria.cardiomegaly.pretrained_auroc" and "unlabelled" in error.value.problem


def test_an_unlabelled_release_may_tighten_the_prevalence_bound(tmp_path):
    root = write_unlabelled(tmp_path / "r", toml=UNLABELLED_TOML + (
        '\n[criteria.cardiomegaly]\npredicted_prevalence_difference = { max = 0.05, judge = "ci_low" }\n'))
    required = {r.key: r for r in requirements(load_policy(DEFAULT_POLICY), load_release(root))}
    assert required["predicted_prevalence_difference[cardiomegaly]"].bound == 0.05
    assert required["predicted_prevalence_difference[cardiomegaly]"].source == "release"


UNLABELLED_SECTION = """\
[criteria."*"]
pretrained_auroc = 0.7
predicted_prevalence_difference = 0.2

[unlabelled.criteria."*"]
predicted_prevalence_difference = 0.08

[unlabelled.criteria]
no_mode_collapse = 0.02
"""


def test_the_policy_says_what_an_unlabelled_release_must_pass_besides(tmp_path):
    policy = _policy(tmp_path, UNLABELLED_SECTION)
    unlabelled = {r.key: r.bound for r in requirements(policy, load_release(write_unlabelled(tmp_path / "u")))}
    labelled = {r.key: r.bound for r in requirements(policy, load_release(write_handmade_release(tmp_path / "l")))}
    assert unlabelled["predicted_prevalence_difference[cardiomegaly]"] == 0.08 and unlabelled["no_mode_collapse"] == 0.02
    assert not any(key.startswith("pretrained_auroc") for key in unlabelled)
    assert labelled["predicted_prevalence_difference[soft tissue mass]"] == 0.2 and "no_mode_collapse" not in labelled
    assert labelled["pretrained_auroc[soft tissue mass]"] == 0.7


@pytest.mark.parametrize("section, key", [
    ('[unlabelled.criteria."*"]\npretrained_auroc = 0.7\n', "unlabelled.criteria.*.pretrained_auroc"),
    ("[unlabelled.criteria.effusion]\ntrain_on_synthetic_auroc = 0.7\n", "unlabelled.criteria.effusion.train_on_synthetic_auroc"),
    ("[unlabelled]\ncriterion = 1\n", "unlabelled.criterion"),
])
def test_a_policy_requiring_a_label_based_criterion_of_unlabelled_releases_is_refused(tmp_path, section, key):
    with pytest.raises(ConfigError) as error:
        _policy(tmp_path, section)
    assert error.value.key == key and error.value.file.name == "gate-policy.toml"


def test_the_policy_raises_no_minimum_count_for_an_unlabelled_release(tmp_path):
    policy = load_policy(DEFAULT_POLICY)
    release = load_release(write_unlabelled(tmp_path / "r"))
    applied = apply(policy, release, requirements(policy, release), {})
    assert all(c.min_count == 0 for c in applied.classes) and applied.labelled is False


def test_unlabelled_synthetic_images_leave_per_class_frechet_out_instead_of_crashing(tmp_path):
    from synthgate.data.collection import Collection
    from synthgate.evaluation.realism import compare_distributions

    rng = np.random.default_rng(0)

    def collection(n, labels, prefix):
        return Collection(prefix, (prefix,), tuple(tmp_path / f"{prefix}{k}.png" for k in range(n)),
                          tuple(f"{prefix}{k}" for k in range(n)), labels, CLASSES,
                          tuple(f"{prefix}-patient{k // 2}" for k in range(n)))

    real = collection(80, (rng.random((80, 2)) < 0.4).astype(np.int64), "real")
    synthetic = collection(40, np.full((40, 2), UNLABELLED, np.int64), "syn")
    features = {"real": rng.normal(size=(80, 16)), "syn": rng.normal(size=(40, 16))}
    pixels = {"real": rng.random((80, 16, 16), np.float32), "syn": rng.random((40, 16, 16), np.float32)}
    report = compare_distributions(synthetic, features["syn"], pixels["syn"], real, features["real"], pixels["real"],
                                   "real images", duplicate_similarity=0.95, max_shift=1)
    assert list(report.frechet) == ["all"]

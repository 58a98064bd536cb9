"""The gate on real chest X-rays: Kermany's paediatric pneumonia images, split by patient.

``studies/kermany/study.toml`` derives releases from the real data (a perfect
stand-in generator that must be cleared, and defects that must be blocked by
exactly the checks its ``[expect]`` names, by registry name); this builds them at
the study's CI profile (64 px, a stratified subset of the patients) and gates each
one in a subprocess, as CI would, under the study's gate policy
(``studies/kermany/policy.toml``, given with ``--policy``). The reference
DenseNet121 is trained once, on reference-train only, and reused by every release
through the session cache.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests.conftest import REPO

STUDIES = str(REPO / "studies")  # the study is a script outside the package: studies/kermany, imported as `kermany`
if STUDIES not in sys.path:
    sys.path.insert(0, STUDIES)

from kermany import build  # noqa: E402
from kermany import study as real_study  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "kermany-pneumonia"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"real data absent: {DATA} (see docs/real-data-study.md)"),
]

STUDY = real_study.load_study(profile="ci", data=DATA / "train") if (DATA / "train").is_dir() else None
RELEASES = sorted(STUDY.releases) if STUDY else []


@pytest.fixture(scope="module")
def built(gate_cache):
    """The study's splits and releases, built once into the session cache."""
    return build.build_study(gate_cache, STUDY)


def test_splits_share_no_patient_and_no_image(built):
    from synthgate.data.loading import from_manifest

    parts = {folder: from_manifest(built / folder, folder, (), classes=STUDY.classes) for folder in build.FOLDERS.values()}
    facts = json.loads((built / "study.json").read_text())
    for first in parts:
        for second in parts:
            if first < second:
                assert not set(parts[first].groups) & set(parts[second].groups), (first, second)
                assert not set(parts[first].digests) & set(parts[second].digests), (first, second)
    for folder, collection in parts.items():
        assert len(set(collection.digests)) == len(collection), f"{folder} holds byte-identical files"
        assert 0 < collection.labels.sum() < len(collection), f"{folder} lacks a class"
    assert sum(facts["identical_copies_dropped"].values()) > 0, "Kermany has byte-identical files: they must be counted"


def test_releases_are_disjoint_from_the_source_images(built):
    """The stand-in's images are real images the generator's source split does not contain."""
    from synthgate.data.loading import from_manifest

    source = from_manifest(built / "source", "source", (), classes=("pneumonia",))
    standin = from_manifest(built / "releases" / "kermany-standin", "standin", (), classes=("pneumonia",))
    assert not set(source.digests) & set(standin.digests)
    assert 0.6 < standin.labels.mean() < 0.85  # Kermany's class balance (74% pneumonia), kept by stratification


@pytest.mark.parametrize("name", RELEASES)
def test_release_verdict(built, run_gate, name):
    expect = STUDY.releases[name]["expect"]
    result = run_gate(str(built / "releases" / name), f"--policy={STUDY.policy}", *STUDY.gate_args)
    assert result.summary is not None, result.output
    assert result.summary["policy"]["file"] == STUDY.policy.name, result.summary["policy"]
    assert result.summary["selection"]["complete"], result.summary["selection"]  # nothing narrowed: a real verdict
    if expect["cleared"]:
        assert result.returncode == 0, result.output
        assert result.summary["verdict"] == "cleared", result.output
    else:
        assert result.returncode == 1, result.output
        assert result.summary["verdict"] == "blocked"
        assert result.failed_checks() == set(expect["blocked_by"]), result.output
    if name == "kermany-standin":  # no home advantage: S (held-back real images) does as well as R at equal size
        equal = next(c for c in result.summary["criteria"] if c["name"] == "synthetic_minus_real_at_equal_size")
        assert equal["ci_low"] <= 0 <= equal["ci_high"], equal
    if name == "kermany-standin":  # the reference model itself, on the real reference test split
        real = next(row for row in result.summary["tables"]["pretrained"] if row["set"] == "real test")
        assert real["auroc"] >= 0.93, real
        assert np.isfinite(real["accuracy"])

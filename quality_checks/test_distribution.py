"""Distribution: synthetic images are distributed like the real images the generator
imitated, are not told apart from them, and are diverse.

Every number is computed in the leakage-free model's feature space (or pixel space
for near-duplicates) next to a real-vs-real baseline: two patient-wise halves.
"""

import pytest

from synthgate.gate.verdicts import Limit, expect_at_most

pytestmark = pytest.mark.distribution


@pytest.fixture(scope="module")
def distribution(evaluated_release):
    return evaluated_release.distribution


@pytest.fixture(scope="module")
def spec(evaluated_release):
    return evaluated_release.release.distribution


def test_frechet_distance_near_real_baseline(distribution, spec, record_limit):
    rows = [
        {"scope": scope, "synthetic vs real": f"{c.synthetic:.2f}", "real vs real": f"{c.baseline:.2f}", "ratio": f"{c.ratio:.2f}"}
        for scope, c in distribution.frechet.items()
    ]
    overall = distribution.frechet["all"]
    expect_at_most(
        record_limit(Limit(overall.ratio, spec.frechet_ratio_max, 1.0)),
        f"Frechet distance to the {distribution.target}, as a multiple of the real-vs-real distance",
        f"{overall.synthetic:.2f} vs {overall.baseline:.2f}", rows,
    )


def test_not_detectable_as_synthetic(distribution, spec, record_limit):
    limit = Limit(distribution.detectability.value, spec.detectability_auroc_max, distribution.baseline_detectability.value)
    expect_at_most(
        record_limit(limit),
        f"AUROC of a classifier telling synthetic from {distribution.target} ({distribution.detectability}; 0.5 = indistinguishable)",
        str(distribution.baseline_detectability),
    )


def test_no_mode_collapse(distribution, spec, record_limit):
    fraction = distribution.duplicate_fraction
    rows = [{"cluster": k + 1, "images": len(c), "examples": ", ".join(p.rsplit("/", 1)[-1] for p in c[:5])}
            for k, c in enumerate(distribution.duplicate_clusters)]
    expect_at_most(
        record_limit(Limit(fraction.synthetic, spec.duplicate_fraction_max, fraction.baseline)),
        f"fraction of synthetic images with a near-duplicate (pixel similarity >= {spec.duplicate_similarity}) "
        f"among the synthetic images, in {len(distribution.duplicate_clusters)} clusters",
        f"{fraction.baseline:.3f}", rows,
    )

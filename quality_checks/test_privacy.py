"""Privacy: no synthetic image is a near-copy of a real image, whether one the
generator learned from or one of the reference images.

Similarity is pixel correlation of residual images allowing small shifts; the
report shows the worst pairs side by side and the real-vs-real baseline.
"""

import pytest

from synthgate.gate.verdicts import GateFailure, Limit

pytestmark = pytest.mark.privacy


def _expect_no_copies(privacy, real_set: str, record_limit) -> None:
    """Fail on any pair above the threshold; the highest similarity is recorded either way."""
    highest = float(privacy.matches[real_set][0].max())
    record_limit(Limit(highest, privacy.threshold, privacy.baseline[real_set]))
    flagged = [pair for pair in privacy.flagged if pair.real_set == real_set]
    if not flagged:
        return
    shown = "\n".join(f"  {p.synthetic} ~ {p.real} (similarity {p.similarity:.3f})" for p in flagged[:5])
    raise GateFailure(
        f"{len(flagged)} synthetic images are near-copies of {real_set} (similarity above {privacy.threshold}; "
        f"held-out real images reach at most {privacy.baseline[real_set]:.3f}):\n{shown}",
        rows=[{"synthetic": p.synthetic, "real": p.real, "similarity": f"{p.similarity:.4f}",
               "feature similarity": f"{p.feature_similarity:.4f}"} for p in flagged],
    )


def test_no_memorised_training_images(evaluated_release, record_limit):
    if evaluated_release.source_images is None:
        pytest.skip("not evaluated: release.toml gives no [release.source_images] (the generator's training images)")
    _expect_no_copies(evaluated_release.privacy, "generator source images", record_limit)


def test_no_copies_of_reference_images(evaluated_release, record_limit):
    _expect_no_copies(evaluated_release.privacy, "reference images", record_limit)

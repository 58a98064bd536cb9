"""Privacy: no synthetic image is a near-copy of a real image, whether one the
generator learned from or one of the reference images.

Similarity is pixel correlation of residual images allowing small shifts; the
report shows the worst pairs side by side and the real-vs-real baseline.
"""

import pytest

from synthgate.gate import GateFailure

pytestmark = pytest.mark.privacy


def _expect_no_copies(privacy, real_set: str) -> None:
    flagged = [pair for pair in privacy.flagged if pair[3] == real_set]
    if not flagged:
        return
    shown = "\n".join(f"  {s} ~ {r} (similarity {v:.3f})" for s, r, v, _ in flagged[:5])
    raise GateFailure(
        f"{len(flagged)} synthetic images are near-copies of {real_set} (similarity >= {privacy.threshold}; "
        f"held-out real images reach at most {privacy.baseline[real_set]:.3f}):\n{shown}",
        rows=[{"synthetic": s, "real": r, "similarity": f"{v:.4f}"} for s, r, v, _ in flagged],
    )


def test_no_memorised_training_images(evaluated_release):
    if evaluated_release.source_images is None:
        pytest.skip("not evaluated: release.toml gives no [release.source_images] (the generator's training images)")
    _expect_no_copies(evaluated_release.privacy, "generator source images")


def test_no_copies_of_reference_images(evaluated_release):
    _expect_no_copies(evaluated_release.privacy, "reference images")

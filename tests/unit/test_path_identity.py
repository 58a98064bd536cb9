"""One path identity: however a manifest spells a path, every listed file is either evaluated
by every check or reported by integrity; nothing is silently left out (property-based)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from synthgate.config.release import load_release
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
from synthgate.gate.measurements import every_image_evaluated

CONFIG = """\
[release]
name = "spellings"
generator = "property test"
source_datasets = ["phantom-site-a"]

[images]
width = 16
height = 16
mode = "L"

[classes.finding]
model_output = "Mass"
min_count = 0
"""

SPELLINGS = [
    lambda p: p,
    lambda p: "./" + p,
    lambda p: p.replace("/", "//"),
    lambda p: p.replace("/", "/./"),
    lambda p: p.replace("images/", "images/sub/../"),
    lambda p: "images/../" + p,
    lambda p: "../" + p,  # escapes the release: a paths finding
    lambda p: p + ".missing",  # no such file: a manifest_files finding
]


def _write(root, rows: list[tuple[str, int]], files: int) -> None:
    (root / "images" / "sub").mkdir(parents=True)
    rng = np.random.default_rng(files)
    for k in range(files):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(root / "images" / f"{k:02d}.png")
    lines = ["path,finding", *(f"{path},{label}" for path, label in rows)]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (root / "release.toml").write_text(CONFIG)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_listed_file_is_evaluated_or_reported(tmp_path_factory, data):
    files = data.draw(st.integers(1, 6), label="files")
    rows = data.draw(st.lists(st.tuples(st.integers(0, files - 1), st.integers(0, len(SPELLINGS) - 1),
                                        st.integers(0, 1)), min_size=1, max_size=10), label="rows")
    root = tmp_path_factory.mktemp("release")
    written = [(SPELLINGS[s](f"images/{k:02d}.png"), label) for k, s, label in rows]
    _write(root, written, files)
    evaluation = ReleaseEvaluation(load_release(root), GateOptions(cache_dir=root / "cache"))
    problems = evaluation.integrity.problems
    reported = {offence.file for found in problems.values() for offence in found}
    evaluated = {path.relative_to(root).as_posix() for path in evaluation.synthetic.paths}
    for row in evaluation.release.manifest.rows:
        assert row.path in evaluated or row.path in reported, (row.path, problems)
    assert every_image_evaluated(evaluation).value == 0
    # the same file under two spellings is one image listed twice, never two images
    assert len(evaluated) == len(set(evaluation.synthetic.digests)) or problems["exact_duplicates"]

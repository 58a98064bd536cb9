"""The result cache: a result is computed once per content, damage is recomputed, failures are never kept."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from synthgate.data.collection import Collection
from synthgate.storage import cached_result, result_key


class Counter:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_a_result_is_computed_once_per_key(tmp_path):
    compute = Counter({"auroc": np.array([0.9, 0.8])})
    key = result_key("grid", "images-a", "settings-1")
    first = cached_result(tmp_path, "utility", key, compute)
    second = cached_result(tmp_path, "utility", key, compute)
    assert compute.calls == 1
    np.testing.assert_array_equal(first["auroc"], second["auroc"])
    other = cached_result(tmp_path, "utility", result_key("grid", "images-b", "settings-1"), compute)
    assert compute.calls == 2 and other["auroc"].tolist() == [0.9, 0.8]


def test_the_key_depends_on_every_part_and_their_order():
    keys = {result_key("a", "b"), result_key("b", "a"), result_key("a", "b", ""), result_key("ab")}
    assert len(keys) == 4


def test_a_damaged_entry_is_removed_and_computed_again(tmp_path):
    key = result_key("x")
    cached_result(tmp_path, "privacy", key, Counter(1))
    entry = next((tmp_path / "results" / "privacy").glob("*.pkl"))
    entry.write_bytes(b"\x80\x05truncated")
    compute = Counter(2)
    with pytest.warns(UserWarning, match="damaged result cache entry"):
        assert cached_result(tmp_path, "privacy", key, compute) == 2
    assert compute.calls == 1 and cached_result(tmp_path, "privacy", key, Counter(3)) == 2


def test_a_failed_computation_leaves_no_entry(tmp_path):
    def fail():
        raise RuntimeError("model could not be loaded")

    with pytest.raises(RuntimeError):
        cached_result(tmp_path, "pretrained", result_key("y"), fail)
    assert not list((tmp_path / "results" / "pretrained").glob("*.pkl"))
    assert cached_result(tmp_path, "pretrained", result_key("y"), Counter(5)) == 5


def test_parallel_runs_compute_a_result_once(tmp_path):
    """Two runs asking at once (pytest -n): one computes, the other waits and reads it."""
    calls = []
    started = threading.Event()

    def slow():
        calls.append(1)
        started.set()
        threading.Event().wait(0.3)
        return "grid"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cached_result(tmp_path, "utility", result_key("z"), slow)))
               for _ in range(2)]
    threads[0].start()
    started.wait(5)
    threads[1].start()
    for thread in threads:
        thread.join(10)
    assert results == ["grid", "grid"] and len(calls) == 1


def _collection(labels, paths=("a.png", "b.png")) -> Collection:
    return Collection("release", ("synthetic:x",), tuple(Path(p) for p in paths), ("d1", "d2"),
                      np.array(labels), ("effusion",), ("image:a", "image:b"))


def test_a_collection_identity_changes_with_its_labels_paths_and_order():
    base = _collection([[1], [0]])
    assert base.identity == _collection([[1], [0]]).identity
    assert base.identity != _collection([[0], [1]]).identity  # one label changed
    assert base.identity != _collection([[1], [0]], paths=("b.png", "a.png")).identity
    assert base.identity != base.subset([1, 0]).identity


def test_a_rescan_decodes_only_files_whose_content_is_new(tmp_path, monkeypatch):
    """Integrity: every file is hashed on every run, decoded only when its bytes were never inspected."""
    from synthgate.config.release import load_release
    from synthgate.evaluation import integrity
    from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
    from tests.conftest import write_handmade_release

    decoded = []
    real_decode = integrity._decode
    monkeypatch.setattr(integrity, "_decode", lambda data, *rest: decoded.append(data) or real_decode(data, *rest))
    root = write_handmade_release(tmp_path / "release")

    def scan():
        decoded.clear()
        return ReleaseEvaluation(load_release(root), GateOptions(cache_dir=tmp_path / "cache")).integrity

    first = scan()
    assert len(decoded) == len(first.facts) > 2
    second = scan()
    assert decoded == [] and second.problems == first.problems and second.facts == first.facts
    image = sorted((root / "images").iterdir())[0]
    image.write_bytes(image.read_bytes()[:-20])  # truncated: new bytes, decoded again, and now a finding
    third = scan()
    assert len(decoded) == 1
    assert [o.file for o in third.problems["decode"]] == [f"images/{image.name}"]

"""The retraining grid on synthetic features where the truth is known."""

from __future__ import annotations

import numpy as np

from synthgate.evaluation.experiments import Features, ProbeGrid, fit_linear_head, pretrained_evaluation
from synthgate.config.release import StatisticsSpec, UtilitySpec


def make_features(n, rng, flip=0.0, shift=0.0):
    """Two-class data whose class shows in the first feature; ``flip`` = label noise."""
    y = (rng.random(n) < 0.4).astype(np.int64)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 2.5 * y + shift
    noisy = np.where(rng.random(n) < flip, 1 - y, y)
    return Features(x, noisy[:, None])


def grid(synthetic, spec=UtilitySpec(ratios=(1.0, 2.0), sizes=(0.5, 1.0), seeds=(0, 1))):
    rng = np.random.default_rng(0)
    pool, validation, test = make_features(200, rng), make_features(80, rng), make_features(300, rng)
    return ProbeGrid(pool, validation, test, synthetic, ("finding",), spec, StatisticsSpec(n_boot=200)).run()


def test_faithful_synthetic_data_trains_a_good_model():
    cells = grid(make_features(400, np.random.default_rng(1)))
    synthetic_only = next(c for c in cells if c.framework == "S")
    assert synthetic_only.auroc_ci["finding"].value > 0.9
    full_mix = [c for c in cells if c.framework == "R+S" and c.size == 1.0]
    assert all(abs(c.versus_real["finding"].value) < 0.03 for c in full_mix)


def test_shuffled_synthetic_labels_are_useless_alone():
    rng = np.random.default_rng(1)
    synthetic = make_features(400, rng)
    synthetic.y = rng.permutation(synthetic.y)
    synthetic_only = next(c for c in grid(synthetic) if c.framework == "S")
    assert synthetic_only.auroc_ci["finding"].value < 0.65


def test_cells_needing_more_synthetic_images_than_exist_are_marked():
    cells = grid(make_features(250, np.random.default_rng(1)))
    unavailable = {(c.framework, c.size, c.ratio) for c in cells if c.unavailable}
    assert unavailable == {("R+S", 1.0, 2.0)}
    assert "needs 400 synthetic images, the release has 250" in next(c for c in cells if c.unavailable).unavailable


def test_single_class_synthetic_data_is_reported_as_a_problem():
    synthetic = make_features(400, np.random.default_rng(1))
    synthetic.y[:] = 1
    cell = next(c for c in grid(synthetic) if c.framework == "S")
    assert "all positive" in cell.problems["finding"]


def test_l2sp_fine_tuning_stays_near_the_pretrained_head():
    rng = np.random.default_rng(0)
    pretrained = fit_linear_head(make_features(300, rng), seed=0)
    opposite = make_features(40, rng)
    opposite.y = 1 - opposite.y
    tuned = fit_linear_head(opposite, seed=0, init=pretrained, weight_decay=1.0)
    scratch = fit_linear_head(opposite, seed=0)
    distance = lambda head: float((head.weight - pretrained.weight).detach().norm())  # noqa: E731
    assert distance(tuned) < distance(scratch)


def test_pretrained_evaluation_flags_a_release_without_negatives():
    rng = np.random.default_rng(0)
    y_val, y_test = (rng.random(100) < 0.5).astype(int), (rng.random(200) < 0.5).astype(int)
    score = lambda y: np.clip(y * 0.6 + rng.random(len(y)) * 0.5, 0, 1)  # noqa: E731
    y_syn = np.ones(50, int)
    result = pretrained_evaluation(
        {"c": (y_val, y_test, y_syn)}, {"c": (score(y_val), score(y_test), score(y_syn))}, n_boot=200, seed=0
    )["c"]
    assert result.real["auroc"].value > 0.9
    assert result.synthetic is None and "every synthetic image is positive" in result.problem


def test_network_grid_finetunes_and_trains_from_scratch(tmp_path):
    """The finetune and scratch learners run end to end on images (tiny, one epoch: plumbing, not accuracy)."""
    import dataclasses

    from synthgate.demo import phantoms
    from synthgate.data.loading import from_manifest
    from synthgate.demo.cohort import Item, write_collection
    from synthgate.evaluation.experiments import NetworkGrid
    from synthgate.models.training import TrainSettings, planned_card
    from synthgate.models.zoo import LoadedModel, build_densenet

    def collection(name, n, offset):
        items = [
            Item(f"images/{k}.png", phantoms.render(offset + k, {"effusion"} if k % 2 else set(), size=32),
                 {"effusion": k % 2}, f"{name}-{k // 2}", k)
            for k in range(n)
        ]
        write_collection(tmp_path / name, items)
        return from_manifest(tmp_path / name, name, (name,))

    splits = {"pool": collection("pool", 16, 0), "validation": collection("val", 8, 100),
              "test": collection("test", 8, 200), "synthetic": collection("syn", 16, 300)}
    card = planned_card(splits["pool"], ("Effusion",), TrainSettings(size=32))
    model = LoadedModel(build_densenet(1).eval(), card, ["Effusion"], "test-model")
    for mode in ("finetune", "scratch"):
        spec = UtilitySpec(mode=mode, ratios=(1.0,), sizes=(1.0,), seeds=(0,), epochs=1)
        cells = NetworkGrid(splits, model, spec, StatisticsSpec(n_boot=100), __import__("torch").device("cpu")).run()
        assert {c.framework for c in cells} == {"R", "R+S", "S", "S->R"}
        assert all(len(c.test_scores["effusion"]) == 8 for c in cells)
        assert all(dataclasses.asdict(c.auroc_ci["effusion"])["n"] == 8 for c in cells)

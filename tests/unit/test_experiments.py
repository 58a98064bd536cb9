"""The retraining grid on synthetic features where the truth is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthgate.config.settings import StatisticsSpec, UtilitySpec
from synthgate.data.collection import Collection
from synthgate.evaluation.experiments import (
    Features,
    Grid,
    ProbeGrid,
    fit_linear_heads,
    pretrained_evaluation,
    reference_roles,
)
from synthgate.measures.metrics import bootstrap_metrics


def make_features(n, rng, flip=0.0, shift=0.0):
    """Two-class data whose class shows in the first feature; ``flip`` = label noise."""
    y = (rng.random(n) < 0.4).astype(np.int64)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 2.5 * y + shift
    noisy = np.where(rng.random(n) < flip, 1 - y, y)
    return Features(x, noisy[:, None])


SMALL_GRID = UtilitySpec(ratios=(1.0, 2.0), sizes=(0.5, 1.0), seeds=(0, 1))


def grid(synthetic, spec=SMALL_GRID):
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


def test_heads_trained_side_by_side_are_the_heads_trained_alone():
    rng = np.random.default_rng(0)
    first, second = make_features(120, rng), make_features(120, rng)
    together = fit_linear_heads([first, second], seeds=[0, 7])
    for k, (part, seed) in enumerate([(first, 0), (second, 7)]):
        alone = fit_linear_heads([part], seeds=[seed])
        assert torch.allclose(together.weight[k], alone.weight[0], atol=1e-5)
        assert torch.allclose(together.bias[k], alone.bias[0], atol=1e-5)
    assert not torch.allclose(together.weight[0], together.weight[1], atol=1e-2)


def test_l2sp_fine_tuning_stays_near_the_pretrained_head():
    rng = np.random.default_rng(0)
    pretrained = fit_linear_heads([make_features(300, rng)], seeds=[0])
    opposite = make_features(40, rng)
    opposite.y = 1 - opposite.y
    tuned = fit_linear_heads([opposite], seeds=[0], init=pretrained, weight_decay=1.0)
    scratch = fit_linear_heads([opposite], seeds=[0])
    distance = lambda heads: float((heads.weight - pretrained.weight).norm())  # noqa: E731
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


def test_network_grid_finetunes_and_trains_from_scratch(tmp_path, monkeypatch, capfd):
    """The finetune and scratch learners run end to end on images (tiny, one epoch: plumbing, not accuracy).

    Each whole-network training takes minutes on CPU, so each says so while it runs.
    """
    import dataclasses

    from synthgate.data.loading import from_manifest
    from synthgate.demo import phantoms
    from synthgate.demo.cohort import Item, write_collection
    from synthgate.evaluation.experiments import NetworkGrid
    from synthgate.models.loading import LoadedModel, build_densenet
    from synthgate.models.plan import TrainSettings, planned_card

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
    monkeypatch.delenv("SYNTHGATE_PROGRESS", raising=False)
    for mode in ("finetune", "scratch"):
        spec = UtilitySpec(mode=mode, ratios=(1.0,), sizes=(1.0,), seeds=(0,), epochs=1)
        cells = NetworkGrid(splits, model, spec, StatisticsSpec(n_boot=100), __import__("torch").device("cpu")).run()
        assert {c.framework for c in cells} == {"R", "R+S", "S", "S->R"}
        assert all(len(c.test_scores["effusion"]) == 8 for c in cells)
        assert all(dataclasses.asdict(c.auroc_ci["effusion"])["n"] == 8 for c in cells)
        done = [line for line in capfd.readouterr().err.splitlines() if line.startswith(f"synthgate: {mode}: ")
                and ": done in " in line]
        assert [line.split(" (")[0] for line in done] == [f"synthgate: {mode}: {what}" for what in (
            "R", "R+S", "S", "S->R, pre-training on synthetic", "S->R")]


# ----------------------------------------------------------------------------- honest intervals


class ScoredGrid(Grid):
    """A grid whose 'training' returns fixed scores, worse or better by seed: the statistics without the learner."""

    def __init__(self, signal_of_seed, same_noise=False, n_test=240, images_per_patient=3, seeds=(0, 1, 2)):
        rng = np.random.default_rng(0)
        patients = n_test // images_per_patient
        test_y = np.repeat(rng.random(patients) < 0.4, images_per_patient).astype(np.int64)[:, None]
        self.noise = {s: np.random.default_rng(100 + (0 if same_noise else s)).normal(size=(n_test + 80, 1)) for s in seeds}
        self.signal_of_seed = signal_of_seed
        spec = UtilitySpec(ratios=(1.0,), sizes=(1.0,), seeds=seeds)
        validation_y = (np.arange(80) % 2)[:, None]
        super().__init__(100, 100, validation_y, test_y, (np.arange(100) % 2)[:, None], (np.arange(100) % 2)[:, None],
                         ("finding",), spec, StatisticsSpec(n_boot=400),
                         test_groups=np.repeat([f"p{k}" for k in range(patients)], images_per_patient))

    def fit_predict(self, framework, real, synthetic, seed):
        y = np.concatenate([self.validation_y, self.test_y]).astype(float)
        scores = self.signal_of_seed(seed) * y + self.noise[seed]
        return scores[:80], scores[80:]


def test_grid_intervals_include_seed_variation_and_resample_test_patients():
    agreeing = {c.framework: c for c in ScoredGrid(lambda seed: 1.0, same_noise=True).run()}
    disagreeing = {c.framework: c for c in ScoredGrid(lambda seed: (0.3, 1.0, 2.0)[seed]).run()}
    test_y, groups = ScoredGrid(lambda seed: 1.0).test_y[:, 0], np.repeat(np.arange(80), 3)
    for framework, cell in disagreeing.items():
        ci = cell.auroc_ci["finding"]
        assert ci.value == pytest.approx(cell.metrics["finding"]["auroc"].mean)  # mean over seeds of each run's AUROC
        assert (ci.resampled, ci.clusters, ci.seeds, ci.n) == ("patients", 80, 3, 240)
        assert (ci.positives, ci.negatives) == (int(test_y.sum()), int(240 - test_y.sum()))
        assert cell.seed_scores["finding"].shape == (3, 240)
        calm = agreeing[framework].auroc_ci["finding"]
        assert ci.high - ci.low > 2 * (calm.high - calm.low)
    # seeds that agree add nothing: the interval is the test-patient bootstrap of any one seed's scores
    r_scores = agreeing["R"].seed_scores["finding"][0]
    test_only = bootstrap_metrics(test_y, r_scores, 0.5, n_boot=400, seed=0, groups=groups)["auroc"]
    assert (agreeing["R"].auroc_ci["finding"].low, agreeing["R"].auroc_ci["finding"].high) == pytest.approx(
        (test_only.low, test_only.high))
    versus = disagreeing["R+S"].versus_real["finding"]
    assert versus.value == pytest.approx(0.0, abs=1e-12) and versus.low < -0.1 and versus.high > 0.1
    assert agreeing["R+S"].versus_real["finding"].high == 0.0 and versus.seeds == 3


def test_pretrained_intervals_resample_test_patients_and_synthetic_images():
    rng = np.random.default_rng(0)
    y_val, y_syn = (rng.random(100) < 0.5).astype(int), (rng.random(60) < 0.3).astype(int)
    y_test = np.repeat((rng.random(50) < 0.5).astype(int), 4)
    score = lambda y: y * 0.6 + rng.random(len(y)) * 0.5  # noqa: E731
    groups = (np.repeat([f"p{k}" for k in range(50)], 4), np.array([f"image:{k}.png" for k in range(60)]))
    result = pretrained_evaluation({"c": (y_val, y_test, y_syn)}, {"c": (score(y_val), score(y_test), score(y_syn))},
                                   n_boot=100, seed=0, groups=groups)["c"]
    real, synthetic, difference = result.real["recall"], result.synthetic["auroc"], result.auroc_difference
    assert (real.resampled, real.clusters, real.positives, real.negatives) == ("patients", 50, y_test.sum(), 200 - y_test.sum())
    assert (synthetic.resampled, synthetic.clusters, synthetic.positives) == ("images", 60, y_syn.sum())
    assert difference.resampled == "patients" and difference.positives == min(y_test.sum(), y_syn.sum())


def _train_collection(n_patients, images_per_patient=3, name="train", offset=0):
    n = n_patients * images_per_patient
    groups = tuple(f"{name}-p{(offset + k) // images_per_patient}" for k in range(n))
    return Collection(name=name, datasets=(name,), paths=tuple(Path(f"{name}/{k}.png") for k in range(n)),
                      digests=tuple(f"{offset + k:064x}" for k in range(n)), labels=(np.arange(n) % 2)[:, None],
                      classes=("finding",), groups=groups)


@pytest.mark.parametrize("fraction", [0.2, 0.4, 0.5])
@pytest.mark.parametrize("seed", [0, 3, 20261121])
def test_patient_split_is_scikit_learns_group_shuffle_split(fraction, seed):
    """Written out so that a warm gate run need not import scikit-learn: it must stay that split, row for row."""
    from sklearn.model_selection import GroupShuffleSplit

    from synthgate.models.plan import patient_split

    rng = np.random.default_rng(seed)
    groups = tuple(f"p{k}" for k in rng.integers(0, 57, size=150))  # patients with 0..n images, rows unordered
    collection = Collection(name="x", datasets=("x",), paths=tuple(Path(f"{k}.png") for k in range(150)),
                            digests=tuple(f"{k:064x}" for k in range(150)), labels=np.zeros((150, 0), dtype=np.int64),
                            classes=(), groups=groups)
    expected = next(GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(groups, groups=groups))
    ours = patient_split(collection, fraction, seed)
    assert [list(part) for part in ours] == [list(part) for part in expected]
    with pytest.raises(ValueError, match="too few"):
        patient_split(collection.subset(np.flatnonzero(np.asarray(groups) == groups[0])), fraction, seed)


def test_real_learner_never_trains_on_what_the_reference_model_saw():
    """No home advantage: R's pool is the probe pool, patients the backbone never saw; validation is its own."""
    from synthgate.models.plan import TrainSettings, backbone_collection, backbone_split, held_out_split, planned_card

    train = _train_collection(40)
    backbone = backbone_collection(train, seed=3)
    roles = reference_roles(train, planned_card(backbone, ("finding",), TrainSettings(seed=3)))
    backbone_rows, probe_rows = backbone_split(train, 3)
    model_train, model_validation = held_out_split(backbone, TrainSettings(seed=3))
    seen = {backbone.groups[i] for i in model_train}
    assert list(roles.pool) == sorted(probe_rows) and not seen & {train.groups[i] for i in roles.pool}
    assert {train.digests[i] for i in roles.validation} == {backbone.digests[i] for i in model_validation}
    assert not seen & {train.groups[i] for i in roles.validation}
    assert len(roles.pool) + len(roles.validation) + len(model_train) == len(train)
    assert "never saw" in roles.backbone
    order = np.random.default_rng(0).permutation(len(train))  # rows in another order: the same patients in each role
    shuffled = train.subset(order)
    again = reference_roles(shuffled, planned_card(backbone_collection(shuffled, 3), ("finding",), TrainSettings(seed=3)))
    assert {shuffled.digests[i] for i in again.pool} == {train.digests[i] for i in roles.pool}


def test_a_model_trained_on_the_whole_reference_train_is_reported_as_a_home_advantage():
    from synthgate.models.plan import TrainSettings, held_out_split, planned_card

    train = _train_collection(40)
    roles = reference_roles(train, planned_card(train, ("finding",), TrainSettings(seed=3)))
    model_train, model_validation = held_out_split(train, TrainSettings(seed=3))
    assert list(roles.validation) == list(model_validation) and list(roles.pool) == list(model_train)
    assert "home advantage" in roles.backbone
    assert set(roles.validation) != set(reference_roles(train).validation)  # not the seed-0 split the default gives


def test_threshold_split_excludes_what_a_model_trained_on_source_images_saw():
    from synthgate.models.plan import TrainSettings, held_out_split, planned_card

    train = _train_collection(40)
    source = _train_collection(30, name="train", offset=45)  # patients p15..p44: half are also in the reference train
    card = planned_card(source, ("finding",), TrainSettings(seed=1))
    roles = reference_roles(train, card, source)
    pool, validation = roles.pool, roles.validation
    seen = {source.groups[i] for i in held_out_split(source, TrainSettings(seed=1))[0]}
    assert not seen & {train.groups[i] for i in validation}
    assert sorted(np.concatenate([pool, validation])) == list(range(len(train)))
    default_validation = held_out_split(train, TrainSettings(seed=1))[1]
    assert len(validation) < len(default_validation)  # some validation patients were seen, and moved to the pool


def _measured(criterion: str, cells):
    from types import SimpleNamespace

    from synthgate.gate.criteria import REGISTRY

    evaluation = SimpleNamespace(utility=cells, release=SimpleNamespace(class_names=("finding",)))
    return REGISTRY[criterion].measure(evaluation, "finding")


def _equal_size(cells) -> float:
    """The synthetic_minus_real_at_equal_size criterion's number, read as the gate reads it."""
    measured = _measured("synthetic_minus_real_at_equal_size", cells)
    assert not measured.problem, measured.problem
    return measured.value


def test_synthetic_data_is_compared_with_as_much_real_data_at_every_size():
    cells = grid(make_features(400, np.random.default_rng(1)))
    by_size = {c.size: c for c in cells if c.framework == "S"}
    real = {c.size: c for c in cells if c.framework == "R"}
    assert set(by_size) == set(real) == {0.5, 1.0}
    assert all(by_size[s].n_synthetic == real[s].n_real for s in by_size)
    assert _equal_size(cells) > -0.05  # faithful synthetic data does as well as real data of the same size

    rng = np.random.default_rng(1)
    shuffled = make_features(400, rng)
    shuffled.y = rng.permutation(shuffled.y)
    assert _equal_size(grid(shuffled)) < -0.2  # shuffled labels: far worse than the same number of real images


def test_a_small_release_is_judged_at_the_sizes_it_fills_and_says_which_it_does_not():
    """150 synthetic images against a pool of 200: S and S->R at half size, R+S 1:1 at half size; the rest named."""
    cells = grid(make_features(150, np.random.default_rng(1)))
    pretrain = next(c for c in cells if c.framework == "S->R")
    assert (pretrain.size, pretrain.n_real, pretrain.n_synthetic, pretrain.unavailable) == (0.5, 100, 100, "")
    equal = _measured("synthetic_minus_real_at_equal_size", cells)
    assert not equal.problem and equal.value > -0.05  # faithful data, judged where it can be
    assert "S @ 100% real" in equal.note or "1 cell(s)" in equal.note
    assert any(row["value"].startswith("not judged: needs 200 synthetic images") for row in equal.rows)
    mix = _measured("mix_minus_real_auroc", cells)
    assert not mix.problem and [row["cell"] for row in mix.rows if not row["value"].startswith("not judged")] == ["R+S 100% @ 50% real"]
    for name in ("train_on_synthetic_auroc", "pretrain_minus_real_auroc"):
        assert not _measured(name, cells).problem


def test_a_release_too_small_for_any_cell_cannot_be_judged():
    cells = grid(make_features(60, np.random.default_rng(1)))  # the smallest cell needs 100 synthetic images: none runs
    for name in ("synthetic_minus_real_at_equal_size", "mix_minus_real_auroc", "train_on_synthetic_auroc",
                 "pretrain_minus_real_auroc"):
        measured = _measured(name, cells)
        assert measured.value is None and "synthetic images, the release has 60" in measured.problem

"""The evaluation frameworks: pretrained scoring and retraining on real/synthetic mixes.

Pretrained (RoentGen's protocol): the leakage-free model scores the real reference
test set and the synthetic release; per class, metrics with bootstrap CIs and the
synthetic-minus-real difference.

Retraining (apply-synthetic-medMNIST's protocol), always tested on the real
reference test set: R (real only), S (synthetic only), R+S at several ratios of
synthetic to real, S->R (pre-train on synthetic, fine-tune on real), each at
several sizes of the real training set and several seeds. Decision thresholds are
chosen on a patient-wise validation split of the reference train, never on test,
and never on images the evaluating model trained on (``reference_roles``); nor does R
train on them (no home advantage over S: the probe learns from that model's features).

Every interval resamples test patients where patient ids are known (images
otherwise), and the retraining intervals also draw a training seed per replicate
(``metrics.seed_bootstrap_auroc``), so they carry the seed-to-seed variation of
training as well as the sampling error of the test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from synthgate.data.collection import Collection
from synthgate.measures.bootstrap import UNKNOWN_PATIENT
from synthgate.measures.metrics import (
    Estimate,
    MeanStd,
    binary_metrics,
    bootstrap_metrics,
    choose_threshold,
    paired_seed_difference,
    seed_bootstrap_auroc,
    summarise_seeds,
    unpaired_difference,
)
from synthgate.models.plan import TrainSettings, backbone_split, held_out_split
from synthgate.models.training import decode_all, predict, train_densenet
from synthgate.progress import step

REPORTED_METRICS = ("auroc", "accuracy", "precision", "recall", "f1")
# The split of a model synthgate did not train (torchxrayvision weights, an outside
# checkpoint): train_densenet's defaults, as nothing else is known about it.
VALIDATION_FRACTION = TrainSettings.val_fraction
VALIDATION_SEED = TrainSettings.seed


def _both_classes(labels: np.ndarray) -> bool:
    return 0 < labels.sum() < len(labels)


# --------------------------------------------------------------------------- pretrained


@dataclass
class PretrainedClass:
    """One class under the pretrained model: real test vs synthetic, at a threshold chosen on validation."""

    threshold: float
    real: dict[str, Estimate]
    synthetic: dict[str, Estimate] | None  # None: the release lacks positives or negatives
    auroc_difference: Estimate | None  # synthetic minus real
    problem: str = ""


def pretrained_evaluation(
    labels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_boot: int,
    seed: int,
    groups: tuple | None = None,
) -> dict[str, PretrainedClass]:
    """Per class, from (validation, real test, synthetic) labels and scores.

    ``groups`` is (real test, synthetic) patient ids per image (``Collection.groups``):
    each set's intervals resample its patients, or its images where unknown.
    """
    test_groups, synthetic_groups = groups or (None, None)
    results = {}
    for name, (y_val, y_test, y_syn) in labels.items():
        s_val, s_test, s_syn = scores[name]
        threshold = choose_threshold(y_val, s_val)
        real = bootstrap_metrics(y_test, s_test, threshold, n_boot=n_boot, seed=seed, groups=test_groups)
        if not _both_classes(y_syn):
            present = "positive" if y_syn.sum() else "negative"
            results[name] = PretrainedClass(
                threshold, real, None, None, f"every synthetic image is {present} for '{name}': AUROC is undefined"
            )
            continue
        synthetic = bootstrap_metrics(y_syn, s_syn, threshold, n_boot=n_boot, seed=seed, groups=synthetic_groups)
        difference = unpaired_difference(y_test, s_test, y_syn, s_syn, metric="auroc", n_boot=n_boot, seed=seed,
                                         groups_a=test_groups, groups_b=synthetic_groups)
        results[name] = PretrainedClass(threshold, real, synthetic, difference)
    return results


# --------------------------------------------------------------------------- retraining


@dataclass
class Cell:
    """One framework at one real-data size (and synthetic ratio), over every seed."""

    framework: str  # "R", "S", "R+S", "S->R"
    size: float
    ratio: float | None
    n_real: int
    n_synthetic: int
    metrics: dict[str, dict[str, MeanStd]] = field(default_factory=dict)  # class -> metric -> mean/std over seeds
    test_scores: dict[str, np.ndarray] = field(default_factory=dict)  # class -> seed-averaged test scores
    seed_scores: dict[str, np.ndarray] = field(default_factory=dict)  # class -> (seeds, test images) scores
    # class -> mean-over-seeds AUROC, CI over test patients and training seeds (metrics.seed_bootstrap_auroc)
    auroc_ci: dict[str, Estimate] = field(default_factory=dict)
    # class -> AUROC(cell) - AUROC(R), paired on test patients, seeds drawn for each (metrics.paired_seed_difference)
    versus_real: dict[str, Estimate] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # class -> why its numbers mean nothing
    unavailable: str = ""

    @property
    def label(self) -> str:
        ratio = f" {self.ratio:.0%}" if self.ratio is not None else ""
        return f"{self.framework}{ratio} @ {self.size:.0%} real"


@dataclass
class Features:
    """Frozen features (standardised on reference train) and 0/1 labels of one split."""

    x: np.ndarray
    y: np.ndarray


@dataclass
class LinearHeads:
    """Multi-label linear heads fitted side by side, one per training seed: weight (seeds, classes, d), bias (seeds, classes)."""

    weight: torch.Tensor
    bias: torch.Tensor

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Sigmoid scores of every head on ``x`` (n, d): (seeds, n, classes)."""
        return torch.sigmoid(torch.from_numpy(x) @ self.weight.transpose(1, 2) + self.bias[:, None]).numpy()


def fit_linear_heads(
    parts: list[Features], seeds: list[int], init: LinearHeads | None = None, epochs: int = 300, lr: float = 0.01,
    weight_decay: float = 1e-2,
) -> LinearHeads:
    """Linear heads on frozen features (the 'probe' learner), one per training set of equal size and seed.

    Each head starts as ``torch.nn.Linear`` does under ``torch.manual_seed(seed)`` and learns by
    full-batch Adam from its own set, side by side with the others: each head's gradient (written
    out) and Adam's per-element steps are those it would have alone, in one batched product per step.

    With ``init`` the heads fine-tune with L2-SP (Li et al. 2018): weight decay pulls
    towards the pre-trained heads instead of towards zero, which is what makes
    "pre-train on synthetic, then fine-tune on real" differ from training on real.
    """
    x = torch.from_numpy(np.stack([part.x for part in parts]))
    y = torch.from_numpy(np.stack([part.y for part in parts]).astype(np.float32))
    if init is None:
        starts = []
        for seed in seeds:
            torch.manual_seed(seed)
            starts.append(torch.nn.Linear(x.shape[2], y.shape[2]))
        weight = torch.stack([start.weight.detach() for start in starts])
        bias = torch.stack([start.bias.detach() for start in starts])
        centres = (torch.zeros_like(weight), torch.zeros_like(bias))
    else:
        weight, bias = init.weight.clone(), init.bias.clone()
        centres = (init.weight, init.bias)
    optimiser = torch.optim.Adam([weight, bias], lr=lr)
    scale = 1.0 / (y.shape[1] * y.shape[2])  # the loss of each head is its mean binary cross-entropy
    for _ in range(epochs):
        # the gradients autograd would give, written out: d(mean BCE)/d(logit) = (sigmoid(logit) - y) / (n * classes)
        residual = (torch.sigmoid(torch.baddbmm(bias[:, None, :], x, weight.transpose(1, 2))) - y) * scale
        weight.grad = torch.bmm(residual.transpose(1, 2), x) + 2 * weight_decay * (weight - centres[0])
        bias.grad = residual.sum(1) + 2 * weight_decay * (bias - centres[1])
        optimiser.step()
    return LinearHeads(weight, bias)


def _sample(rng: np.random.Generator, n_available: int, n: int) -> np.ndarray:
    return np.sort(rng.choice(n_available, size=n, replace=False))


class Grid:
    """The retraining grid; subclasses say how one model is fitted and what it predicts."""

    def __init__(self, n_pool: int, n_synthetic: int, validation_y: np.ndarray, test_y: np.ndarray,
                 pool_y: np.ndarray, synthetic_y: np.ndarray, classes, spec, statistics, test_groups=None):
        self.n_pool, self.n_synthetic = n_pool, n_synthetic
        self.validation_y, self.test_y, self.pool_y, self.synthetic_y = validation_y, test_y, pool_y, synthetic_y
        self.classes, self.spec, self.statistics = tuple(classes), spec, statistics
        self.test_groups = None if test_groups is None else np.asarray(test_groups)  # patient per test image

    def fit_predict(self, framework: str, real: np.ndarray, synthetic: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Train ``framework`` on pool rows ``real`` and synthetic rows ``synthetic``: (validation, test) scores."""
        raise NotImplementedError

    def fit_predict_seeds(self, framework: str, samples: list[tuple[np.ndarray, np.ndarray]],
                          seeds: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``fit_predict`` for each seed's (real rows, synthetic rows); a learner that can train them together does."""
        return [self.fit_predict(framework, real, synthetic, seed) for (real, synthetic), seed in zip(samples, seeds)]

    def cells(self) -> list[Cell]:
        n_real = {size: max(2, round(size * self.n_pool)) for size in self.spec.sizes}
        cells = []
        for size, n in n_real.items():
            cells.append(Cell("R", size, None, n, 0))
            cells.extend(Cell("R+S", size, ratio, n, round(ratio * n)) for ratio in self.spec.ratios)
            cells.append(Cell("S", size, None, 0, n))  # as many synthetic images as R has real ones
        # Pre-training on as many synthetic images as real ones: at full size, or the largest size the release fills.
        largest = max([size for size, n in n_real.items() if n <= self.n_synthetic] or n_real)
        cells.append(Cell("S->R", largest, None, n_real[largest], n_real[largest]))
        for cell in cells:
            if cell.n_synthetic > self.n_synthetic:
                cell.unavailable = f"needs {cell.n_synthetic} synthetic images, the release has {self.n_synthetic}"
        return cells

    def run(self) -> list[Cell]:
        cells = self.cells()
        for cell in cells:
            if not cell.unavailable:
                self._run_cell(cell)
        real_by_size = {c.size: c for c in cells if c.framework == "R"}
        for cell in cells:
            baseline = real_by_size.get(cell.size)
            if cell.unavailable or cell.framework == "R" or baseline is None:
                continue
            for k, name in enumerate(self.classes):
                cell.versus_real[name] = paired_seed_difference(
                    self.test_y[:, k], baseline.seed_scores[name], cell.seed_scores[name],
                    n_boot=self.statistics.n_boot, seed=self.statistics.seed, groups=self.test_groups,
                )
        return cells

    def _run_cell(self, cell: Cell) -> None:
        per_seed = {c: {m: [] for m in REPORTED_METRICS} for c in self.classes}
        test_scores = {c: [] for c in self.classes}
        samples = []
        for seed in self.spec.seeds:
            rng = np.random.default_rng([seed, int(cell.size * 1000), int((cell.ratio or 0) * 1000)])
            samples.append((_sample(rng, self.n_pool, cell.n_real), _sample(rng, self.n_synthetic, cell.n_synthetic)))
        fitted = self.fit_predict_seeds(cell.framework, samples, list(self.spec.seeds))
        for (real, synthetic), (val_scores, scores) in zip(samples, fitted):
            training_labels = np.concatenate([self.pool_y[real], self.synthetic_y[synthetic]])
            for k, name in enumerate(self.classes):
                if not _both_classes(training_labels[:, k]) or not _both_classes(self.synthetic_y[synthetic, k]) and cell.n_synthetic:
                    cell.problems[name] = f"the synthetic training images are all {'positive' if self.synthetic_y[synthetic, k].any() else 'negative'} for '{name}'"
                threshold = choose_threshold(self.validation_y[:, k], val_scores[:, k])
                for metric, value in binary_metrics(self.test_y[:, k], scores[:, k], threshold).items():
                    per_seed[name][metric].append(value)
                test_scores[name].append(scores[:, k])
        for k, name in enumerate(self.classes):
            cell.metrics[name] = {m: summarise_seeds(v) for m, v in per_seed[name].items()}
            cell.seed_scores[name] = np.stack(test_scores[name])
            cell.test_scores[name] = cell.seed_scores[name].mean(axis=0)
            cell.auroc_ci[name] = seed_bootstrap_auroc(
                self.test_y[:, k], cell.seed_scores[name], n_boot=self.statistics.n_boot, seed=self.statistics.seed,
                groups=self.test_groups,
            )


class ProbeGrid(Grid):
    """The 'probe' learner: linear heads on the frozen leakage-free model's features (seconds on CPU)."""

    def __init__(self, pool: Features, validation: Features, test: Features, synthetic: Features, classes, spec, statistics,
                 test_groups=None):
        super().__init__(len(pool.x), len(synthetic.x), validation.y, test.y, pool.y, synthetic.y, classes, spec, statistics,
                         test_groups)
        self.pool, self.validation, self.test, self.synthetic = pool, validation, test, synthetic

    def fit_predict_seeds(self, framework, samples, seeds):
        reals = [Features(self.pool.x[real], self.pool.y[real]) for real, _ in samples]
        synthetics = [Features(self.synthetic.x[synthetic], self.synthetic.y[synthetic]) for _, synthetic in samples]
        if framework == "R":
            heads = fit_linear_heads(reals, seeds)
        elif framework == "S":
            heads = fit_linear_heads(synthetics, seeds)
        elif framework == "R+S":
            heads = fit_linear_heads([Features(np.concatenate([r.x, s.x]), np.concatenate([r.y, s.y]))
                                      for r, s in zip(reals, synthetics)], seeds)
        else:
            heads = fit_linear_heads(reals, seeds, init=fit_linear_heads(synthetics, seeds))
        return list(zip(heads.predict(self.validation.x), heads.predict(self.test.x)))


class NetworkGrid(Grid):
    """The 'finetune' (from the leakage-free weights) and 'scratch' (random init) learners: whole DenseNets."""

    def __init__(self, splits: dict[str, Collection], model, spec, statistics, device):
        pool, synthetic = splits["pool"], splits["synthetic"]
        super().__init__(len(pool), len(synthetic), splits["validation"].labels, splits["test"].labels,
                         pool.labels, synthetic.labels, pool.classes, spec, statistics, splits["test"].groups)
        self.splits, self.model, self.device = splits, model, device
        self.size = model.card.input_size
        self.images = {name: decode_all(c, self.size) for name, c in splits.items() if name in ("validation", "test")}

    def _train(self, collection: Collection, seed: int, init, what: str) -> torch.nn.Module:
        """One whole-network training: minutes on CPU, so each shows its own progress (epochs)."""
        settings = TrainSettings(size=self.size, seed=seed, epochs=self.spec.epochs)
        with step(f"{self.spec.mode}: {what} ({len(collection):,} images, seed {seed})", total=settings.epochs,
                  unit="epoch") as progress:
            return train_densenet(collection, settings, self.device, init=init, on_epoch=progress.advance).model

    def fit_predict(self, framework, real, synthetic, seed):
        real_part, synthetic_part = self.splits["pool"].subset(real), self.splits["synthetic"].subset(synthetic)
        init = self.model.module if self.spec.mode == "finetune" else None
        if framework == "S->R":  # pre-trained on the synthetic images, then fine-tuned on the real ones
            init = self._train(synthetic_part, seed, init, "S->R, pre-training on synthetic")
        training = (real_part.concat(synthetic_part) if framework == "R+S"
                    else {"R": real_part, "S": synthetic_part, "S->R": real_part}[framework])
        model = self._train(training, seed, init, framework)
        return tuple(predict(model, self.images[name], self.device) for name in ("validation", "test"))


def standardised_features(pool: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise every split with the statistics of the real training pool (never of the test set)."""
    mean, std = pool.mean(axis=0), pool.std(axis=0) + 1e-6
    return [((x - mean) / std).astype(np.float32) for x in (pool, *others)]


@dataclass(frozen=True)
class ReferenceRoles:
    """What each image of the reference train is for: the real learner's pool, threshold validation.

    ``backbone`` says in words which reference-train images the evaluating model (whose
    features the probe learns from) saw; the report prints it beside the grid.
    """

    pool: np.ndarray
    validation: np.ndarray
    backbone: str


def reference_roles(reference_train: Collection, model_card=None,
                    source_images: Collection | None = None) -> ReferenceRoles:
    """Split the reference train patient-wise into the real learner's pool and the threshold validation.

    Neither may hold an image the evaluating model trained on: the probe's features
    come from that model, so a pool of its own training images would favour R over
    S and R+S by construction (a home advantage), and thresholds chosen on them
    would be overfitted. When synthgate trained the model (its card's
    ``training_fingerprint`` names the images), the split follows from the card's seed:

    - trained on the reference train's backbone part (``plan.backbone_split``,
      ``[model] train = "reference"``): validation is the model's own validation
      split of that part (``plan.held_out_split``), the pool is the probe pool,
      patients the model never saw;
    - trained on the whole reference train (a checkpoint from an older synthgate):
      validation is the model's own validation split, the pool its training images,
      and ``backbone`` says that R has the home advantage;
    - trained on ``source_images`` (the generator's source images): reference-train
      patients with any image the model trained on (same file hash or same patient
      id) are moved out of validation into the pool (the leakage checks block a
      release whose reference shares patients or images with the source anyway).

    A model synthgate did not train gets train_densenet's default split; what it saw
    is not known here. The fraction is always ``TrainSettings.val_fraction``: it is
    the only value release.toml can give, and cards do not record it.
    """
    fingerprint = getattr(model_card, "training_fingerprint", None)
    card_seed = getattr(model_card, "seed", None)
    settings = TrainSettings(seed=VALIDATION_SEED if fingerprint is None or card_seed is None else card_seed)
    if fingerprint is not None and card_seed is not None:
        backbone, probe = backbone_split(reference_train, card_seed)
        backbone_part = reference_train.subset(backbone)
        if fingerprint == backbone_part.fingerprint:
            held = backbone[held_out_split(backbone_part, settings)[1]]
            return ReferenceRoles(np.sort(probe), np.sort(held), (
                f"the evaluating model trained on {len(backbone) - len(held)} reference-train images and validated on "
                f"{len(held)} (thresholds are chosen on these); the real learner R draws from the other "
                f"{len(probe)}, of patients the model never saw, as S draws from synthetic images it never saw"))
    pool, validation = held_out_split(reference_train, settings)
    if fingerprint is None:
        return ReferenceRoles(pool, validation, "the evaluating model's training images are not known; none of the "
                              "reference train is known to be new to it")
    if fingerprint == reference_train.fingerprint:
        return ReferenceRoles(pool, validation, (
            f"the evaluating model trained on the {len(pool)} images R draws from: R has a home advantage over S "
            "(retrain the reference model with this synthgate to remove it)"))
    if source_images is not None and fingerprint == source_images.fingerprint:
        trained = held_out_split(source_images, settings)[0]
        seen_digests = {source_images.digests[i] for i in trained}
        seen_patients = {source_images.groups[i] for i in trained} - {g for g in source_images.groups
                                                                       if g.startswith(UNKNOWN_PATIENT)}
        seen = {reference_train.groups[i] for i in validation
                if reference_train.digests[i] in seen_digests or reference_train.groups[i] in seen_patients}
        moved = np.array([reference_train.groups[i] in seen for i in validation], dtype=bool)
        pool, validation = np.sort(np.concatenate([pool, validation[moved]])), validation[~moved]
        return ReferenceRoles(pool, validation, "the evaluating model trained on the generator's source images, "
                              "none of the reference train")
    return ReferenceRoles(pool, validation, "the evaluating model's training images are none of the reference train "
                          "(by its card's fingerprint)")

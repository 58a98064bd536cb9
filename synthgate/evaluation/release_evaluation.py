"""The per-release evaluation a gate session shares between its tests.

Tests ask it for results and assert; they never compute. Every result is a
cached property: computed on first use, once per session, and the expensive ones
(features, trained models) are also cached on disk by content hash.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from synthgate.config.release import Release
from synthgate.config.toml import ConfigError
from synthgate.data import loading
from synthgate.data.collection import UNLABELLED, Collection
from synthgate.evaluation.evaluating_model import EvaluatingModel
from synthgate.evaluation.integrity import IntegrityReport, Offence, scan_release
from synthgate.progress import step
from synthgate.storage import cached_result, cached_table, result_key

# What each cached result is, as the progress line of its computation says it.
STEPS = {
    "leakage-data-sets": "leakage checks: comparing files, pixels and patients across the data sets",
    "leakage": "leakage checks: comparing the release's files, pixels and patients with the data sets",
    "pretrained": "scoring real and synthetic images with the evaluating model",
    "prevalence": "predicted prevalence of each class",
    "utility": "retraining grid: R, S, R+S and S->R at every size, ratio and seed",
    "distribution": "distribution statistics (Frechet, KID, PRDC, detectability, near-duplicates)",
    "privacy": "memorisation search: synthetic images against source and reference images",
}


@dataclass(frozen=True)
class GateOptions:
    cache_dir: Path
    weights_dir: Path | None = None
    device: str | None = None
    utility_overrides: dict = field(default_factory=dict)  # UtilitySpec fields set on the command line


class ReleaseEvaluation(EvaluatingModel):
    def __init__(self, release: Release, options: GateOptions):
        self.release = release
        self.options = options
        self.model_plan = self._model_plan()
        self.check_class_mapping()  # a class scored by an output the weights never learned: refused now

    def computed(self, name: str) -> bool:
        """Whether a result was already computed this session (reporting shows what exists, never computes)."""
        return name in self.__dict__

    def evaluated_counts(self) -> dict[str, int]:
        """How many release images each stage saw: every model-based check sees exactly those that passed integrity."""
        counts = {"manifest rows": len(self.release.manifest.rows)}
        if self.computed("integrity"):
            counts["passed integrity"] = len(self.integrity.facts)
        if self.computed("synthetic"):
            counts["model-based checks"] = len(self.synthetic)
        return counts

    def _cached(self, kind: str, compute, *depends_on: str):
        """``compute()`` once per content: cached on disk under the hashes of the images, model and settings it uses."""
        key = result_key(kind, repr(self.release.classes), repr(self.release.statistics), *depends_on)

        def compute_with_progress():
            with step(STEPS[kind], unit="step"):
                return compute()

        return cached_result(self.options.cache_dir, kind, key, compute_with_progress)

    def _identities(self, *names: str) -> tuple[str, ...]:
        """The identities of the named collections (attributes of this evaluation; '-' for one the release lacks)."""
        collections = [getattr(self, name) for name in names]
        return tuple("-" if c is None else c.identity for c in collections)

    def _split_identities(self) -> tuple[str, ...]:
        return tuple(collection.identity for collection in self.splits.values())

    # ------------------------------------------------------------------ what is on disk

    @cached_property
    def integrity(self) -> IntegrityReport:
        """Every file hashed and located on every run; decoded and inspected only when its content is new."""
        inspect_settings = result_key("decoded", repr(self.release.images))
        with cached_table(self.options.cache_dir, "decoded-files", inspect_settings) as decoded:
            return scan_release(self.release, decoded=decoded)

    @property
    def class_counts(self) -> dict[str, int]:
        """Positives per class as the manifest labels them (none for an unlabelled release)."""
        if not self.release.labelled:
            return {}
        return {
            name: sum(row.labels.get(name) == "1" for row in self.release.manifest.rows)
            for name in self.release.class_names
        }

    @cached_property
    def synthetic(self) -> Collection:
        """The release's images as a collection (only meaningful once integrity passed)."""
        rows = [row for row in self.release.manifest.rows if row.path in self.integrity.facts]
        classes, labelled = self.release.class_names, self.release.labelled
        return Collection(
            name=f"release {self.release.name}",
            datasets=(f"synthetic:{self.release.name}",),
            paths=tuple(self.release.root / row.path for row in rows),
            digests=tuple(self.integrity.file_digests[row.path] for row in rows),
            labels=np.array([[int(row.labels[c]) if labelled else UNLABELLED for c in classes]
                             for row in rows], dtype=np.int64).reshape(len(rows), len(classes)),
            classes=classes,
            groups=tuple(f"image:{row.path}" for row in rows),
        )

    def _reference(self, which: str) -> Collection:
        if self.release.reference is None:
            raise ConfigError(self.release.config_file, "reference", "no [reference] data: this check needs it")
        ref = getattr(self.release.reference, which)
        return loading.load(ref, f"reference {which}", self.release.class_names)

    @cached_property
    def reference_train(self) -> Collection:
        return self._reference("train")

    @cached_property
    def reference_test(self) -> Collection:
        return self._reference("test")

    @cached_property
    def source_images(self) -> Collection | None:
        ref = self.release.source_images
        return None if ref is None else loading.load(ref, "generator source", self.release.class_names)

    @cached_property
    def _leakage_inputs(self) -> tuple[str, ...]:
        """What every leakage comparison depends on besides the release: the model, the source's names, the shift
        tolerated (of the privacy settings the only one they use: a changed threshold re-judges) and the data sets."""
        from synthgate.models.errors import ModelLoadError

        try:
            model = "no model" if self.model_plan is None else self.model_identity
        except (ConfigError, ModelLoadError) as error:  # reported by the model checks themselves
            model = f"unreadable model: {error}"
        names = ("reference_train", "reference_test", "source_images") if self.release.reference else ("source_images",)
        return (model, repr(self.release.source_datasets), f"max_shift={self.release.privacy.max_shift}",
                *self._identities(*names))

    @cached_property
    def leakage_among_data_sets(self) -> dict[str, list[Offence]]:
        """The leakage checks that never read the release (see :mod:`synthgate.evaluation.leakage_findings`): they
        run, and are cached, whatever state the release's files are in."""
        from synthgate.evaluation.leakage_findings import data_set_findings

        return self._cached("leakage-data-sets", lambda: data_set_findings(self), *self._leakage_inputs)

    @cached_property
    def leakage_with_release(self) -> dict[str, list[Offence]]:
        """The leakage checks on the release's images (only meaningful once integrity passed)."""
        from synthgate.evaluation.leakage_findings import release_findings

        return self._cached("leakage", lambda: release_findings(self), self.synthetic.identity, *self._leakage_inputs)

    @property
    def leakage(self) -> dict[str, list[Offence]]:
        """Each leakage criterion's findings by registry name."""
        return {**self.leakage_among_data_sets, **self.leakage_with_release}

    # ------------------------------------------------------------------ experiments

    @cached_property
    def utility_spec(self):
        return dataclasses.replace(self.release.utility, **self.options.utility_overrides)

    @cached_property
    def reference_roles(self):
        """Which reference-train images are the real learner's pool and which the threshold validation."""
        from synthgate.evaluation.experiments import reference_roles

        return reference_roles(self.reference_train, self.model_card, self.source_images)

    @cached_property
    def splits(self) -> dict[str, Collection]:
        """The collections every experiment uses: the real learner's pool, validation, real test, synthetic."""
        roles = self.reference_roles
        return {
            "pool": self.reference_train.subset(roles.pool, "reference train (pool)"),
            "validation": self.reference_train.subset(roles.validation, "reference validation"),
            "test": self.reference_test,
            "synthetic": self.synthetic,
        }

    @cached_property
    def pretrained(self):
        from synthgate.evaluation.experiments import pretrained_evaluation

        def compute():
            index = self.class_outputs()
            scored = {name: self.embeddings(collection).scores for name, collection in self.splits.items()}
            labels, scores = {}, {}
            for name, k in index.items():
                labels[name] = tuple(self.splits[s].column(name) for s in ("validation", "test", "synthetic"))
                scores[name] = tuple(scored[s][:, k] for s in ("validation", "test", "synthetic"))
            stats = self.release.statistics
            groups = tuple(np.asarray(self.splits[s].groups) for s in ("test", "synthetic"))
            return pretrained_evaluation(labels, scores, n_boot=stats.n_boot, seed=stats.seed, groups=groups)

        return self._cached("pretrained", compute, self.model_identity, *self._split_identities())

    @cached_property
    def prevalence(self):
        """Per class: the shares of synthetic and of real test images the model calls positive (no labels needed)."""
        from synthgate.evaluation.prevalence import predicted_prevalence

        return self._cached("prevalence", lambda: predicted_prevalence(self), self.model_identity,
                            *self._split_identities(), *self._identities("source_images"))

    @cached_property
    def utility(self):
        """The retraining grid, every cell tested on the real reference test set."""
        from synthgate.evaluation.experiments import Features, ProbeGrid, standardised_features

        spec = self.utility_spec

        def compute():
            if spec.mode != "probe":
                from synthgate.evaluation.experiments import NetworkGrid

                return NetworkGrid(self.splits, self.model, spec, self.release.statistics, self.device).run()
            splits = self.splits
            names = ("pool", "validation", "test", "synthetic")
            standardised = standardised_features(*(self.embeddings(splits[name]).features for name in names))
            pool, validation, test, synthetic = (Features(x, splits[name].labels) for x, name in zip(standardised, names))
            return ProbeGrid(pool, validation, test, synthetic, self.release.class_names, spec, self.release.statistics,
                             test_groups=np.asarray(splits["test"].groups)).run()

        return self._cached("utility", compute, self.model_identity, repr(spec), self.device.type,
                            *self._split_identities())

    # ------------------------------------------------------------------ realism and privacy

    @cached_property
    def realism_target(self) -> tuple[str, Collection]:
        """What synthetic images are compared with: the generator's source images if given, else the reference."""
        if self.source_images is not None:
            return "generator source images", self.source_images
        return "reference images", self.reference_train.concat(self.reference_test)

    @cached_property
    def pixels(self) -> DecodedSets:
        """The pixel checks' images, each file decoded once: at 64 px under the set's name ("synthetic", "target",
        "reference"; the leakage checks' size) and at each exact-comparison resolution the distribution and privacy
        settings ask for under "<name>@<size>" (float16: 100k images at 128 px take 3.3 GB). A set is decoded when
        first read: the checks among the data sets never decode the release."""
        from synthgate.data.imaging import PIXEL_SIZE

        sizes = {PIXEL_SIZE: np.float32}
        for size in (self.release.distribution.resolution, self.release.privacy.resolution):
            sizes.setdefault(size, np.float16)
        return DecodedSets({"synthetic": lambda: self.synthetic, "target": lambda: self.realism_target[1],
                            "reference": lambda: self.reference_train.concat(self.reference_test)}, sizes)

    @cached_property
    def distribution(self):
        from synthgate.evaluation.realism import compare_distributions

        target_name, target = self.realism_target
        spec = self.release.distribution
        size = spec.resolution
        return self._cached("distribution", lambda: compare_distributions(
            self.synthetic, self.embeddings(self.synthetic).features, self.pixels[f"synthetic@{size}"],
            target, self.embeddings(target).features, self.pixels[f"target@{size}"],
            target_name, spec.duplicate_similarity, spec.max_shift, seed=self.release.statistics.seed, resolution=size,
        ), self.model_identity, repr(spec), target_name, self.synthetic.identity, target.identity)

    @cached_property
    def privacy(self):
        from synthgate.evaluation.realism import find_memorised

        spec = self.release.privacy
        size = spec.resolution
        reference = self.reference_train.concat(self.reference_test)

        def compute():
            real_sets = {"reference images": (reference, self.pixels[f"reference@{size}"],
                                              self.embeddings(reference).features)}
            if self.source_images is not None:
                real_sets["generator source images"] = (self.source_images, self.pixels[f"target@{size}"],
                                                        self.embeddings(self.source_images).features)
            return find_memorised(self.synthetic, self.pixels[f"synthetic@{size}"],
                                  self.embeddings(self.synthetic).features, real_sets, spec.pixel_similarity_max,
                                  spec.max_shift, seed=self.release.statistics.seed, resolution=size)

        return self._cached("privacy", compute, self.model_identity, repr(spec), self.synthetic.identity,
                            reference.identity, *self._identities("source_images"))


class DecodedSets:
    """Named image sets decoded at several sizes, each set when one of its arrays is first asked for:
    ``decoded["reference"]`` at 64 px, ``decoded["reference@128"]`` at 128 px."""

    def __init__(self, sets: dict, sizes: dict):
        from synthgate.data.imaging import PIXEL_SIZE

        self._sets, self._sizes, self._default = sets, sizes, PIXEL_SIZE
        self._decoded: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        from synthgate.data.imaging import load_pixel_sizes

        name = key.partition("@")[0]
        if name not in self._decoded:
            collection = self._sets[name]()
            sizes = ", ".join(f"{size} px" for size in self._sizes)
            with step(f"decoding {len(collection):,} images ({name}) at {sizes}"):
                loaded = load_pixel_sizes(collection, self._sizes)
            self._decoded[name] = loaded[self._default]
            self._decoded.update({f"{name}@{size}": array for size, array in loaded.items()})
        return self._decoded[key]

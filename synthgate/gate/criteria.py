"""The criteria registry: every gate criterion, declared once, as data.

Each entry says what is measured (in words), its family, whether it is judged per
class or for the whole release, its direction (the measured number must be at least
or at most the bound), how it is judged by default (point estimate or a CI bound),
the inputs it needs, what the real-vs-real baseline beside it is, and the function
that measures it. The gate checks, the policy, the report, the JSON summary, JUnit
and the clearance record all derive from this table; nothing else names a criterion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from synthgate.gate import measurements as m

# Families in the order a reader meets them (also the pytest markers).
FAMILIES = {
    "integrity": "image files, manifest and labels are sound",
    "leakage": "the evaluating model never saw the generator's data",
    "fidelity": "a leakage-free model scores synthetic images like real ones",
    "utility": "training on synthetic data helps, or does not hurt",
    "distribution": "synthetic images are distributed like real ones",
    "privacy": "synthetic images are not copies of training images",
}
AT_LEAST, AT_MOST = "at_least", "at_most"
JUDGES = ("point", "ci_low", "ci_high")
# What each input a criterion needs is, in words (for "could not be evaluated" messages).
INPUTS = {
    "reference": "[reference] train and test data",
    "model": "an evaluating [model]",
    "source_images": "the generator's training images ([release] source_images)",
    "model_image_list": "the list of images the evaluating model saw (published weights list only data sets)",
    "patient_ids": "patient ids on both sides of a patient-level comparison",
    "labels": "labelled images (a release from an unconditional generator has none: [release] labelled = false)",
}
# Why a criterion needing labels is not applicable to an unlabelled release (reported, never required).
NOT_APPLICABLE_UNLABELLED = "not applicable: the release is unlabelled"


@dataclass(frozen=True)
class CriterionSpec:
    """One gate criterion: what is measured and how a requirement on it is judged."""

    name: str
    family: str
    description: str
    direction: str
    per_class: bool
    measure: Callable
    bounds: tuple[float, float]  # the range a threshold must lie in
    judge: str = "point"  # the default judge
    needs: tuple[str, ...] = ()
    baseline: str = ""  # the real-vs-real number shown beside it, in words
    fixed: float | None = None  # a bound no policy may change (file and leakage checks: zero offences)
    on_sound_files: bool = False  # measured on decoded images: not evaluated when the files failed integrity

    def strictness(self, judge: str) -> int:
        """0 lenient, 1 point, 2 strict: the CI bound on the failing side is the strict one."""
        strict = "ci_low" if self.direction == AT_LEAST else "ci_high"
        return 1 if judge == "point" else 2 if judge == strict else 0

    def stricter_bound(self, a: float, b: float) -> bool:
        """Whether bound ``a`` is at least as strict as ``b``."""
        return a >= b if self.direction == AT_LEAST else a <= b


def _offences(name, family, description, measure, needs=(), on_sound_files=False):
    return CriterionSpec(name, family, description, AT_MOST, False, measure, (0.0, 0.0), needs=needs, fixed=0.0,
                         on_sound_files=on_sound_files)


def _per_class(name, family, description, measure, bounds=(0.0, 1.0), needs=("reference", "model", "labels")):
    return CriterionSpec(name, family, description, AT_LEAST, True, measure, bounds, needs=needs,
                         baseline="the same number on real reference test images", on_sound_files=True)


def _limit(name, family, description, measure, bounds, baseline, needs=("reference", "model"), judge="point"):
    return CriterionSpec(name, family, description, AT_MOST, False, measure, bounds, judge, needs, baseline,
                         on_sound_files=True)


DIFFERENCE = (-1.0, 1.0)
_ENTRIES = (
    _offences("paths_stay_inside_release", "integrity", "manifest paths point outside the release folder",
              m.integrity("paths")),
    _offences("manifest_and_files_match", "integrity", "mismatches between manifest rows and files",
              m.integrity("manifest_files")),
    _offences("images_decode", "integrity", "images do not decode", m.integrity("decode")),
    _offences("image_size", "integrity", "images have the wrong size", m.integrity("size")),
    _offences("image_mode_and_bit_depth", "integrity", "images have the wrong mode or bit depth", m.integrity("mode")),
    _offences("no_blank_images", "integrity", "images are blank or constant", m.integrity("blank")),
    _offences("no_exact_duplicates", "integrity", "images are exact duplicates", m.integrity("exact_duplicates")),
    _offences("labels_in_vocabulary", "integrity", "label problems", m.integrity("labels")),
    _offences("class_minimum_counts", "integrity", "classes below their required count of positives",
              m.integrity("class_counts"), needs=("labels",)),
    _offences("no_text_metadata", "integrity", "images carry embedded text or metadata", m.integrity("metadata")),
    _offences("every_image_evaluated", "integrity", "images that passed the file checks but are not the ones the "
              "model-based checks evaluate", m.every_image_evaluated, on_sound_files=True),
    _offences("model_never_saw_generator_source", "leakage", "training data sets shared by the model and the generator "
              "(by data-set name)", m.leakage("model_never_saw_generator_source"), needs=("reference", "model")),
    _offences("model_saw_no_source_images", "leakage", "images the evaluating model was trained or validated on that "
              "are generator source images (same file, same pixels or a near-duplicate)",
              m.leakage("model_saw_no_source_images"), needs=("reference", "model", "source_images")),
    _offences("model_saw_no_source_patients", "leakage", "patients whose images both the evaluating model and the "
              "generator learned from", m.leakage("model_saw_no_source_patients"),
              needs=("reference", "model", "source_images")),
    _offences("reference_splits_share_no_patients", "leakage", "patients in both reference train and test",
              m.leakage("reference_splits_share_no_patients"), needs=("reference",)),
    _offences("reference_splits_share_no_images", "leakage", "images in both reference train and test (same file "
              "or same pixels)", m.leakage("reference_splits_share_no_images"), needs=("reference",)),
    _offences("reference_holds_no_source_images", "leakage", "reference images that are generator source images "
              "(same file, same pixels or a near-duplicate)", m.leakage("reference_holds_no_source_images"),
              needs=("reference", "source_images")),
    _offences("reference_shares_no_patients_with_source", "leakage", "patients in both the reference data and the "
              "generator's source images", m.leakage("reference_shares_no_patients_with_source"),
              needs=("reference", "source_images")),
    _offences("release_holds_no_reference_test_images", "leakage", "release images that are reference test images "
              "(same file, same pixels or a near-duplicate)", m.leakage("release_holds_no_reference_test_images"),
              needs=("reference",), on_sound_files=True),
    _offences("release_holds_no_model_training_images", "leakage", "release images that are images the evaluating "
              "model was trained or validated on (same file, same pixels or a near-duplicate)",
              m.leakage("release_holds_no_model_training_images"), needs=("reference", "model"), on_sound_files=True),
    _per_class("pretrained_auroc", "fidelity", "AUROC of the pretrained model on the synthetic images",
               m.pretrained("auroc")),
    _per_class("pretrained_accuracy", "fidelity", "accuracy of the pretrained model on the synthetic images",
               m.pretrained("accuracy")),
    _per_class("pretrained_precision", "fidelity", "precision of the pretrained model on the synthetic images",
               m.pretrained("precision")),
    _per_class("pretrained_recall", "fidelity", "recall of the pretrained model on the synthetic images",
               m.pretrained("recall")),
    _per_class("synthetic_minus_real_auroc", "fidelity", "pretrained AUROC on synthetic minus on real test images",
               m.synthetic_minus_real, DIFFERENCE),
    _per_class("train_on_synthetic_auroc", "utility", "real-test AUROC of a model trained on synthetic images only "
               "(as many as the full real training set, or the most the release has at a grid size)", m.train_on_synthetic),
    _per_class("synthetic_minus_real_at_equal_size", "utility", "real-test AUROC of a model trained on n synthetic "
               "images minus one trained on n real images (worst n of the grid)", m.versus_real("S", largest_only=False),
               DIFFERENCE),
    _per_class("mix_minus_real_auroc", "utility", "real-test AUROC of real+synthetic minus real only "
               "(worst ratio, full size or the largest the release fills)", m.versus_real("R+S"), DIFFERENCE),
    _per_class("pretrain_minus_real_auroc", "utility", "real-test AUROC of synthetic pre-training + real fine-tuning "
               "minus real only (full size or the largest the release fills)", m.versus_real("S->R"), DIFFERENCE),
    _limit("frechet_distance_near_real_baseline", "distribution", "Frechet distance to the real images, as a multiple "
           "of the real-vs-real distance", m.frechet_ratio, (1.0, 100.0), "1.0 by construction (real half vs real half)"),
    _limit("frechet_within_real_spread", "distribution", "Frechet distance to the real images: its ratio to the "
           "real-vs-real distance minus 1, in units of how far above 1 a real half's ratio goes (the upper end of "
           "its 95% range over patient-wise halvings)", m.frechet_in_real_spreads, (0.5, 100.0),
           "0 for a perfect stand-in, at most 1 for a real half"),
    _limit("not_detectable_as_synthetic", "distribution", "AUROC of a classifier telling synthetic from real images "
           "(0.5 = indistinguishable)", m.detectability, (0.5, 1.0), "the same classifier on two halves of the real images"),
    _limit("no_mode_collapse", "distribution", "fraction of synthetic images with a near-duplicate among the synthetic "
           "images", m.duplicate_fraction, (0.0, 0.5), "the same fraction among real images"),
    CriterionSpec("predicted_prevalence_difference", "distribution", "difference between the shares of synthetic and "
                  "of real images the evaluating model calls positive (absolute; real: the generator's source images, "
                  "else the reference test images; threshold chosen on the source images, else on real validation "
                  "images)", AT_MOST, True,
                  m.predicted_prevalence, (0.0, 1.0), needs=("reference", "model"),
                  baseline="the share of real images called positive", on_sound_files=True),
    _limit("no_memorised_training_images", "privacy", "highest pixel similarity of a synthetic image to a generator "
           "training image", m.copies_of("generator source images"), (0.5, 0.999),
           "highest similarity of held-out real images", needs=("reference", "model", "source_images")),
    _limit("no_copies_of_reference_images", "privacy", "highest pixel similarity of a synthetic image to a reference "
           "image", m.copies_of("reference images"), (0.5, 0.999), "highest similarity of held-out real images"),
)
REGISTRY: dict[str, CriterionSpec] = {spec.name: spec for spec in _ENTRIES}


def of_family(family: str) -> list[CriterionSpec]:
    return [spec for spec in _ENTRIES if spec.family == family]

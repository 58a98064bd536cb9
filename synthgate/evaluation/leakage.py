"""Leakage: a score is worthless from a model that saw the generator's data, or
measured on a test set that overlaps what was trained on or delivered."""

from __future__ import annotations

from synthgate.data.collection import Collection
from synthgate.evaluation.integrity import Offence
from synthgate.models.card import ModelCard
from synthgate.models.datasets import leakage_overlap


def model_saw_source(card: ModelCard, source_datasets: tuple[str, ...]) -> list[Offence]:
    """The model's training data sets that are (or are built on) the generator's source data."""
    overlap = sorted(leakage_overlap(card, source_datasets))
    if not overlap:
        return []
    return [
        Offence(
            card.source,
            f"model was trained on {', '.join(card.training_datasets)}; {', '.join(overlap)} is also "
            f"what the generator learned from (source_datasets: {', '.join(source_datasets)})",
        )
    ]


def shared_patients(train: Collection, test: Collection) -> list[Offence]:
    """Patients with images on both sides of the reference split."""
    test_groups = {g for g in test.groups if not g.startswith("image:")}
    shared = sorted(test_groups & set(train.groups))
    return [Offence(f"patient {patient}", "has images in both reference train and test") for patient in shared]


def shared_images(first: Collection, second: Collection, what: str) -> list[Offence]:
    """Files of ``second`` whose bytes are identical to a file of ``first``."""
    by_digest = {digest: path for digest, path in zip(first.digests, first.paths)}
    return [
        Offence(str(path), f"byte-identical to {by_digest[digest]} ({what})")
        for digest, path in zip(second.digests, second.paths)
        if digest in by_digest
    ]

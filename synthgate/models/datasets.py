"""Known chest X-ray data sets: their names, and which image collections each is built on.

Why: the gate refuses to judge a synthetic release with a model that saw the
release's source images.  A model card says what the model was trained on, a
release says what its generator learned from, and the two are written by
different people: torchxrayvision's short names (``nih``, ``pc``, ``kaggle``),
the data sets' own titles ("NIH ChestX-ray14", "CheXpert") or the name of a
challenge that re-labelled someone else's images ("RANZCR CLiP", "SIIM-ACR
Pneumothorax" are NIH ChestX-ray14 images).  This module owns the one table that
maps every such name to a canonical id and records what each collection is built
on, so that :func:`leakage_overlap` compares images, not spellings.

Names are matched case- and punctuation-insensitively ("ChestX-ray14",
"chestxray14" and "CHEST X RAY 14" are one name).  A name the table does not know
stands for itself (lower case, '-' separated), so two releases naming the same
unknown source still overlap; :func:`is_known` lets callers say when a leakage
check rests on such a name.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthgate.models.card import ModelCard


@dataclass(frozen=True)
class KnownDataset:
    """One chest X-ray image collection (or a re-labelling of one)."""

    id: str  # canonical id: lower case, '-' separated
    title: str  # how its authors name it
    names: tuple[str, ...] = ()  # aliases: torchxrayvision's names, other common spellings
    built_on: tuple[str, ...] = ()  # ids of the collections whose images it reuses
    source: str = ""  # where the built_on claim comes from


_NIH = ("nih-chestxray14",)
_CHEXPERT = ("chexpert",)
_MIMIC = ("mimic-cxr",)
_NLM_TB = ("nlm-montgomery", "nlm-shenzhen")

# torchxrayvision 1.5.7 names (weights file names, model descriptions, dataset
# classes) are listed first in each entry; the others are titles and spellings
# seen in papers, on Kaggle and PhysioNet.
_TABLE = (
    KnownDataset(
        "nih-chestxray14", "NIH ChestX-ray14",
        ("nih", "NIH_Dataset", "NIH ChestX-ray8", "ChestX-ray14", "ChestX-ray8", "NIH CXR14", "CXR14", "CXR8",
         "NIH Chest X-rays", "NIH Chest X-ray Dataset", "NIH Clinical Center Chest X-ray", "ChestXray-NIHCC"),
    ),
    KnownDataset(
        "google-nih", "Google NIH relabels",
        ("google", "nih_google", "NIH_Google_Dataset", "Google relabels", "Google NIH", "NIH Google relabels",
         "Google ChestX-ray14 relabels", "google2019"),
        _NIH, "xrv NIH_Google_Dataset: a subset of NIH ChestX-ray14 re-annotated at Google (Majkowska 2019)",
    ),
    KnownDataset(
        "rsna-pneumonia", "RSNA Pneumonia Detection Challenge",
        ("rsna", "kaggle", "RSNA_Pneumonia_Dataset", "RSNA Pneumonia", "RSNA Pneumonia Challenge",
         "RSNA 2018 Pneumonia"),
        _NIH, "xrv RSNA_Pneumonia_Dataset: a subset of the NIH ChestX-ray14 images (Shih 2019); xrv's file names "
        "call it 'kaggle'",
    ),
    KnownDataset(
        "siim-acr-pneumothorax", "SIIM-ACR Pneumothorax Segmentation",
        ("siim", "SIIM_Pneumothorax_Dataset", "SIIM-ACR", "SIIM-ACR Pneumothorax", "SIIM Pneumothorax"),
        _NIH, "Filice 2020, crowdsourced pneumothorax annotations on the NIH chest X-ray dataset",
    ),
    KnownDataset(
        "ranzcr-clip", "RANZCR CLiP",
        ("ranzcr", "CLiP", "RANZCR CLiP Catheter and Line Position", "ranzcr-clip-catheter-line-classification"),
        _NIH, "Tang 2021, CLiP: catheter and line position labels drawn on NIH ChestX-ray14 images",
    ),
    KnownDataset("padchest", "PadChest", ("pc", "PC_Dataset", "BIMCV PadChest")),
    KnownDataset("padchest-gr", "PadChest-GR", ("PadChest GR",), ("padchest",),
                 "grounded radiology reports on PadChest images"),
    KnownDataset(
        "chexpert", "CheXpert",
        ("chex", "CheX_Dataset", "Stanford CheXpert", "CheXpert-v1.0", "CheXpert-v1.0-small"),
    ),
    KnownDataset("chexlocalize", "CheXlocalize", ("CheXlocalize_Dataset",), _CHEXPERT,
                 "xrv CheXlocalize_Dataset: the official CheXpert validation and test images with masks"),
    KnownDataset("chexpert-plus", "CheXpert Plus", (), _CHEXPERT, "CheXpert images paired with their reports"),
    KnownDataset("chexphoto", "CheXphoto", (), _CHEXPERT, "photographs and screenshots of CheXpert films"),
    KnownDataset(
        "mimic-cxr", "MIMIC-CXR",
        ("mimic", "mimic_ch", "mimic_nb", "MIMIC_Dataset", "MIMIC-CXR-JPG"),
        (), "xrv's mimic_ch / mimic_nb are MIMIC-CXR labelled with the CheXpert / NegBio labeller: same images",
    ),
    KnownDataset("ms-cxr", "MS-CXR", (), _MIMIC, "phrase grounding boxes on MIMIC-CXR images"),
    KnownDataset("chest-imagenome", "Chest ImaGenome", (), _MIMIC, "scene graphs on MIMIC-CXR images"),
    KnownDataset("reflacx", "REFLACX", (), _MIMIC, "eye-tracking reports on MIMIC-CXR images"),
    KnownDataset(
        "openi", "Open-i",
        ("Openi_Dataset", "IU X-ray", "iu_xray", "IU CXR", "Indiana University Chest X-ray Collection",
         "Indiana University Chest X-rays"),
    ),
    KnownDataset(
        "vindr-cxr", "VinDr-CXR",
        ("vin", "VinDr_Dataset", "VinBrain_Dataset", "VinDr", "VinBigData", "VinBigData Chest X-ray Abnormalities Detection"),
    ),
    KnownDataset("vindr-pcxr", "VinDr-PCXR", ("VinDr PCXR pediatric",)),
    KnownDataset("brax", "BRAX", ("BRAX_Dataset", "Brazilian labeled chest X-ray dataset")),
    KnownDataset(
        "covid19-image-data-collection", "COVID-19 Image Data Collection",
        ("covid19", "COVID19_Dataset", "covid-chestxray-dataset"),
    ),
    KnownDataset("nlm-montgomery", "NLM Montgomery County CXR set",
                 ("montgomery", "Montgomery County", "NLM-MontgomeryCXRSet")),
    KnownDataset("nlm-shenzhen", "NLM Shenzhen CXR set", ("shenzhen", "ChinaSet_AllFiles", "Shenzhen Hospital")),
    KnownDataset("nlm-tb", "NLM tuberculosis sets", ("nlmtb", "NLMTB_Dataset", "NLM TB"), _NLM_TB,
                 "xrv NLMTB_Dataset: the Montgomery County and Shenzhen sets"),
    KnownDataset("tbx11k", "TBX11K", ("TBX11K_Dataset",), _NLM_TB,
                 "xrv TBX11K_Dataset: overlaps NLMTB_Dataset (Montgomery + Shenzhen images)"),
    KnownDataset("object-cxr", "Object-CXR", ("objectcxr", "ObjectCXR_Dataset")),
    KnownDataset("stonybrook-covid", "Stony Brook COVID-19 RALO",
                 ("stonybrook", "StonyBrookCOVID_Dataset", "Stony Brook COVID", "RALO")),
    KnownDataset("jsrt", "JSRT", ("JSRT database",)),
    KnownDataset(
        "kermany-pneumonia", "Kermany pediatric pneumonia",
        ("Kermany", "Kermany 2018", "pediatric pneumonia", "paediatric pneumonia", "Chest X-Ray Images (Pneumonia)",
         "chest-xray-pneumonia", "Guangzhou pediatric pneumonia",
         "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification"),
    ),
)  # fmt: skip

DATASETS: Mapping[str, KnownDataset] = types.MappingProxyType({entry.id: entry for entry in _TABLE})


def _key(name: str) -> str:
    """What names are compared by: lower case, letters and digits only."""
    return re.sub(r"[\W_]+", "", name.casefold())


def _index(table: Mapping[str, KnownDataset]) -> dict[str, str]:
    index: dict[str, str] = {}
    for entry in table.values():
        for name in (entry.id, entry.title, *entry.names):
            owner = index.setdefault(_key(name), entry.id)
            if owner != entry.id:
                raise RuntimeError(f"data-set name {name!r} is claimed by both {owner!r} and {entry.id!r}")
        for parent in entry.built_on:
            if parent not in table:
                raise RuntimeError(f"data set {entry.id!r} is built on unknown {parent!r}")
    return index


_BY_KEY = _index(DATASETS)


def normalise_name(name: str) -> str:
    """``name`` in lower case with every run of punctuation or spaces as one '-'."""
    if not isinstance(name, str):
        raise TypeError(f"a data-set name must be a string, got {name!r}")
    normal = re.sub(r"[\W_]+", "-", name.casefold()).strip("-")
    if not normal:
        raise ValueError(f"data-set name {name!r} is empty")
    return normal


def canonical_name(name: str) -> str:
    """The table's id for ``name``, or ``name`` normalised if the table does not know it."""
    normal = normalise_name(name)
    return _BY_KEY.get(_key(name), normal)


def is_known(name: str) -> bool:
    """Whether ``name`` is (an alias of) a data set in the table."""
    return _key(normalise_name(name)) in _BY_KEY


def unknown_names(names: Iterable[str]) -> list[str]:
    """The names in ``names`` the table does not know, in order (for warnings)."""
    return [name for name in _names(names) if not is_known(name)]


def underlying_datasets(name: str) -> frozenset[str]:
    """The canonical id of ``name`` plus every image collection it is built on.

    Unknown names stand for themselves (normalised), so two releases naming
    the same unknown source still overlap.
    """
    canonical = canonical_name(name)
    found = {canonical}
    pending = [canonical]
    while pending:
        entry = DATASETS.get(pending.pop())
        for parent in entry.built_on if entry else ():
            if parent not in found:
                found.add(parent)
                pending.append(parent)
    return frozenset(found)


def _names(names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("expected a list of data-set names, not one string")
    return list(names)


def _expand(names: Iterable[str]) -> set[str]:
    return set().union(*(underlying_datasets(n) for n in _names(names)))


def leakage_overlap(card: ModelCard, source_datasets: Iterable[str]) -> set[str]:
    """Image collections both in the model's training data and in the sources.

    An empty set means the model never saw the release's source images, as far
    as the card and the table above know (see :func:`unknown_names`).
    """
    return _expand(card.training_datasets) & _expand(source_datasets)

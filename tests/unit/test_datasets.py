"""synthgate.models.datasets: data-set names, what each is built on, and leakage between them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synthgate.models import datasets
from synthgate.models.card import ARCHITECTURE, NORMALISATION, ModelCard
from synthgate.models.compat import import_xrv
from synthgate.models.datasets import DATASETS, canonical_name, is_known, leakage_overlap, underlying_datasets
from synthgate.models.weights import XRV_WEIGHTS, xrv_card

NIH = "nih-chestxray14"

# The spellings people write, and the canonical id each must resolve to.
WRITTEN = {
    "NIH ChestX-ray14": NIH,
    "ChestX-ray8": NIH,
    "chestxray14": NIH,
    "CHEST X RAY 14": NIH,
    "nih": NIH,
    "CheXpert": "chexpert",
    "chex": "chexpert",
    "MIMIC-CXR": "mimic-cxr",
    "mimic_cxr_jpg": "mimic-cxr",
    "mimic_ch": "mimic-cxr",
    "mimic_nb": "mimic-cxr",
    "PadChest": "padchest",
    "pc": "padchest",
    "RSNA Pneumonia": "rsna-pneumonia",
    "rsna": "rsna-pneumonia",
    "kaggle": "rsna-pneumonia",
    "RANZCR CLiP": "ranzcr-clip",
    "VinDr-CXR": "vindr-cxr",
    "vin": "vindr-cxr",
    "SIIM-ACR Pneumothorax": "siim-acr-pneumothorax",
    "siim": "siim-acr-pneumothorax",
    "Open-i": "openi",
    "IU X-ray": "openi",
    "Google NIH relabels": "google-nih",
    "google": "google-nih",
    "nih_google": "google-nih",
    "Kermany": "kermany-pneumonia",
    "pediatric pneumonia": "kermany-pneumonia",
    "Chest X-Ray Images (Pneumonia)": "kermany-pneumonia",
}


def card_trained_on(*names: str) -> ModelCard:
    return ModelCard(
        model_id="test",
        architecture=ARCHITECTURE,
        training_datasets=list(names),
        training_fingerprint=None,
        outputs=["finding"],
        input_size=64,
        normalisation=NORMALISATION,
        validation_metrics={},
        seed=0,
        library_versions={},
        source="test",
    )


@pytest.mark.parametrize(("written", "canonical"), WRITTEN.items())
def test_written_names_resolve(written, canonical):
    assert is_known(written)
    assert canonical_name(written) == canonical
    assert canonical in underlying_datasets(written)


def test_every_alias_of_the_table_resolves_to_its_entry():
    for entry in DATASETS.values():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", entry.id), entry.id
        for name in (entry.id, entry.title, *entry.names):
            assert canonical_name(name) == entry.id, name
            assert canonical_name(name.upper()) == entry.id, name
            assert is_known(f" {name}_ "), name
        assert set(entry.built_on) <= set(DATASETS), entry.id


def test_conflicting_aliases_are_refused():
    table = {
        "a": datasets.KnownDataset("a", "A", ("shared name",)),
        "b": datasets.KnownDataset("b", "B", ("Shared-Name",)),
    }
    with pytest.raises(RuntimeError, match="claimed by both 'a' and 'b'"):
        datasets._index(table)


def _xrv_dataset_names() -> set[str]:
    """Every data-set name torchxrayvision 1.5.7 uses in its weights and model descriptions."""
    xrv = import_xrv()
    names = set()
    for entry in xrv.models.model_urls.values():
        names.update(Path(entry["weights_url"]).name.split("-densenet121-")[0].split("-") if "-densenet121-" in
                     entry["weights_url"] else ())
        described = re.search(r"datasets:? ([\w-]+) ", entry.get("description", ""))
        if described:
            names.update(described.group(1).split("-"))
    names.update(re.search(r"datasets: ([\w ]+) datasets", xrv.autoencoders.model_urls["101-elastic"]["description"])
                 .group(1).split())
    ieee = (Path(xrv.__file__).parent / "baseline_models" / "ieee8023" / "__init__.py").read_text()
    for described in re.findall(r"Trained on\s+([\w ]+?) at", ieee):
        names.update(described.split())
    return names


def test_torchxrayvision_names_are_known():
    names = _xrv_dataset_names()
    assert {"nih", "pc", "chex", "mimic_ch", "mimic_nb", "google", "openi", "rsna", "kaggle", "siim", "vin",
            "objectcxr"} <= names
    assert [n for n in sorted(names) if not is_known(n)] == []
    dataset_classes = [n for n in dir(import_xrv().datasets) if n.endswith("_Dataset") and n not in
                       ("Merge_Dataset", "Filter_Dataset", "Subset_Dataset", "Covariate_Dataset")]
    assert [n for n in dataset_classes if not is_known(n)] == []


def test_what_each_is_built_on():
    for name in ("RANZCR CLiP", "RSNA Pneumonia", "Google NIH relabels", "SIIM-ACR Pneumothorax", "kaggle"):
        assert NIH in underlying_datasets(name), name
    assert underlying_datasets("RANZCR_CLiP") == {"ranzcr-clip", NIH}
    assert underlying_datasets("google") == {"google-nih", NIH}
    assert underlying_datasets("pc") == {"padchest"}
    assert underlying_datasets("vindr-cxr") == {"vindr-cxr"}
    assert underlying_datasets("MS-CXR") == {"ms-cxr", "mimic-cxr"}
    assert underlying_datasets("TBX11K") == {"tbx11k", "nlm-montgomery", "nlm-shenzhen"}


def test_unknown_names_stand_for_themselves():
    assert not is_known("My Private Set")
    assert canonical_name("My Private Set") == "my-private-set"
    assert underlying_datasets("My__Private  Set!") == {"my-private-set"}
    assert datasets.unknown_names(["nih", "My Private Set", "phantom-site-a"]) == ["My Private Set", "phantom-site-a"]
    for empty in ("", "  ", "--"):
        with pytest.raises(ValueError, match="empty"):
            underlying_datasets(empty)
    with pytest.raises(TypeError):
        is_known(None)


def test_leakage_between_spellings():
    assert leakage_overlap(card_trained_on("NIH ChestX-ray14"), ["RANZCR CLiP"]) == {NIH}
    assert leakage_overlap(card_trained_on("ChestX-ray8"), ["SIIM_ACR"]) == {NIH}
    assert leakage_overlap(card_trained_on("MIMIC-CXR-JPG"), ["mimic_nb"]) == {"mimic-cxr"}
    assert leakage_overlap(card_trained_on("CheXpert"), ["MIMIC-CXR", "PadChest"]) == set()
    assert leakage_overlap(card_trained_on("my-private-set"), ["My Private Set"]) == {"my-private-set"}
    with pytest.raises(TypeError, match="not one string"):
        leakage_overlap(card_trained_on("nih"), "nih")


def xrv(name: str) -> ModelCard:
    return xrv_card(name, model_id=f"xrv:{name}:0")


def test_leakage_of_xrv_weights():
    assert leakage_overlap(xrv("all"), ["PadChest"]) == {"padchest"}
    assert leakage_overlap(xrv("all"), ["Kermany"]) == set()
    assert leakage_overlap(xrv("nih"), ["padchest"]) == set()
    assert leakage_overlap(xrv("nih"), ["ranzcr-clip"]) == {NIH}
    assert leakage_overlap(xrv("rsna"), ["SIIM_ACR"]) == {NIH}
    assert leakage_overlap(xrv("mimic_ch"), ["vindr-cxr", "chexpert"]) == set()
    assert leakage_overlap(xrv("pc"), ["BIMCV PadChest"]) == {"padchest"}
    for name, entry in XRV_WEIGHTS.items():
        assert all(is_known(d) for d in entry.datasets), name
        assert xrv(name).training_datasets == list(entry.training_datasets)

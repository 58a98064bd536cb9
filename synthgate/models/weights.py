"""torchxrayvision's published DenseNet121 weights: what each was trained on, and where its file lies.

Why: a release names its evaluating model as ``{"xrv": "nih"}``.  Before any file
is read the gate must know what those weights were trained on (for the leakage
check), which of their 18 outputs were really trained (a class mapped to an
untrained output would be scored by noise), and which file to look for (synthgate
never downloads).  This module owns that table, copied from torchxrayvision
1.5.7's ``models.model_urls`` (checked against it by the unit tests), the file
names and folder the weights are found in, and the card of each weights.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from synthgate.models.card import ARCHITECTURE, NORMALISATION, ModelCard, current_library_versions
from synthgate.models.datasets import canonical_name
from synthgate.models.errors import ModelSpecError

WEIGHTS_DIR_ENV = "SYNTHGATE_WEIGHTS_DIR"
XRV_URL = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"

# The 18 outputs of every xrv DenseNet121, in order (xrv.datasets.default_pathologies).
XRV_TARGETS: tuple[str, ...] = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema",
    "Emphysema", "Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening",
    "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
    "Lung Opacity", "Enlarged Cardiomediastinum",
)  # fmt: skip


@dataclass(frozen=True)
class XrvWeights:
    """One DenseNet121 entry of torchxrayvision's ``models.model_urls`` (v1.5.7).

    ``trained`` are the outputs those weights learned: xrv lists every other
    output as '' in ``labels`` (``model.pathologies``) and gives it no
    calibrated threshold (``op_threshs`` NaN).  ``datasets`` are the data sets
    as xrv names them in the weights file name (``kaggle`` is RSNA Pneumonia).
    """

    name: str
    file_name: str
    datasets: tuple[str, ...]
    trained: frozenset[str]
    input_size: int = 224  # model_urls[...]["input_resolution"]
    seed: int = 0  # every file name ends "-seed0-best.pt"

    @property
    def weights_url(self) -> str:
        return XRV_URL + self.file_name

    @property
    def outputs(self) -> tuple[str, ...]:
        """xrv's 18-slot ``labels``: the output's name where trained, else ''."""
        return tuple(t if t in self.trained else "" for t in XRV_TARGETS)

    @property
    def training_datasets(self) -> tuple[str, ...]:
        """Canonical ids (see :mod:`synthgate.models.datasets`) of ``datasets``."""
        return tuple(dict.fromkeys(canonical_name(d) for d in self.datasets))


def _file(datasets: str) -> str:
    return f"{datasets}-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"


_NIH = frozenset(XRV_TARGETS[:14])
_CHEX = frozenset({
    "Atelectasis", "Consolidation", "Pneumothorax", "Edema", "Effusion", "Pneumonia",
    "Cardiomegaly", "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
})  # fmt: skip

_ALL_DATASETS = ("nih", "pc", "chex", "mimic_ch", "google", "openi", "kaggle")
XRV_WEIGHTS: Mapping[str, XrvWeights] = types.MappingProxyType(
    {
        w.name: w
        for w in (
            XrvWeights("all", _file("-".join(_ALL_DATASETS)), _ALL_DATASETS, frozenset(XRV_TARGETS)),
            XrvWeights("nih", _file("nih"), ("nih",), _NIH),
            XrvWeights("pc", _file("pc"), ("pc",), _NIH | {"Fracture"}),
            XrvWeights("chex", _file("chex"), ("chex",), _CHEX),
            XrvWeights("mimic_nb", _file("mimic_nb"), ("mimic_nb",), _CHEX),
            XrvWeights("mimic_ch", _file("mimic_ch"), ("mimic_ch",), _CHEX),
            XrvWeights("rsna", _file("kaggle"), ("kaggle",), frozenset({"Pneumonia", "Lung Opacity"})),
        )
    }
)


def xrv_entry(name: str) -> XrvWeights:
    """The table's entry for weights ``name``; a ModelSpecError naming the known ones if none."""
    try:
        return XRV_WEIGHTS[name]
    except (KeyError, TypeError):
        raise ModelSpecError(
            f"unknown torchxrayvision weights {name!r}; known: {', '.join(XRV_WEIGHTS)}"
        ) from None


def untrained_output_problem(weights: str, output: str | int) -> str | None:
    """Why ``output`` of xrv weights ``weights`` must not score a class, or None if it may.

    ``output`` is an output name (``"Mass"``) or its column index.  Those weights
    must have been trained for it: every xrv DenseNet has all 18 outputs, but
    e.g. the CheXpert and MIMIC weights never learned "Mass", whose column is
    then untrained noise.  Unknown weights raise ModelSpecError.
    """
    entry = xrv_entry(weights)
    trained = ", ".join(o for o in entry.outputs if o)
    if isinstance(output, int) and not isinstance(output, bool):
        if not 0 <= output < len(XRV_TARGETS):
            return (f"output {output} does not exist: torchxrayvision weights {weights!r} have "
                    f"{len(XRV_TARGETS)} outputs (trained: {trained})")
        output = XRV_TARGETS[output]
    if output not in XRV_TARGETS:
        return f"{output!r} is not an output of torchxrayvision weights {weights!r} (trained: {trained})"
    if output not in entry.trained:
        return (f"output {output!r} of torchxrayvision weights {weights!r} was not trained "
                f"(those weights were trained for: {trained})")
    return None


def weights_filename(name: str) -> str:
    """The file name torchxrayvision stores weights ``name`` under."""
    return xrv_entry(name).file_name


def default_weights_dir() -> Path:
    """``$SYNTHGATE_WEIGHTS_DIR``, else torchxrayvision's own download folder.

    The fallback mirrors ``torchxrayvision.utils.get_cache_dir()`` so weights
    xrv already downloaded are found without importing it.
    """
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".torchxrayvision" / "models_data"


def resolve_weights_path(name: str, cache_dir: Path | str) -> Path:
    """Where weights ``name`` must lie inside ``cache_dir``."""
    return Path(cache_dir).expanduser() / weights_filename(name)


def xrv_card(name: str, model_id: str) -> ModelCard:
    """The card of torchxrayvision weights ``name``, from the table above.

    Available without the weight file, so leakage can be checked before loading.
    """
    entry = xrv_entry(name)
    return ModelCard(
        model_id=model_id,
        architecture=ARCHITECTURE,
        training_datasets=list(entry.training_datasets),
        training_fingerprint=None,
        outputs=list(entry.outputs),
        input_size=entry.input_size,
        normalisation=NORMALISATION,
        validation_metrics={},
        seed=entry.seed,
        library_versions=current_library_versions(),
        source=f"torchxrayvision:{name}",
    )

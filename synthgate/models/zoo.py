"""The evaluating models: DenseNet121 in torchxrayvision's form, with model cards.

Every model synthgate evaluates with is ``xrv.models.DenseNet`` (one input
channel, pixels in [-1024, 1024]).  It comes either from torchxrayvision's
published weights (``{"xrv": "nih"}``) or from a checkpoint synthgate trained
itself (``{"checkpoint": path}``, a plain state dict with a ``.card.json``
beside it).  The card records what the model was trained on, so that the gate
can refuse to judge a synthetic release with a model that saw the release's
source images (see :func:`leakage_overlap`).

Nothing read from disk may run code: files are unpickled only with an
allow-list of the classes and functions such files really contain.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import os
import pickle
import platform
import re
import types
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthgate.models.compat import import_xrv
from synthgate.storage import atomic_write, sha256_file

ARCHITECTURE = "densenet121-xrv"
NORMALISATION = "xrv [-1024,1024]"
CARD_SUFFIX = ".card.json"
WEIGHTS_DIR_ENV = "SYNTHGATE_WEIGHTS_DIR"
_BAD_KEYS_SHOWN = 5


class ModelLoadError(Exception):
    """A model could not be loaded (or was refused) as asked."""


class WeightsNotFoundError(ModelLoadError):
    """The weights file is not on disk; synthgate never downloads it."""


class ModelCardError(ModelLoadError):
    """A model card is missing, unreadable or malformed."""


class ModelSpecError(ValueError):
    """A model spec (``[model]`` table or ``ModelSpec``) is invalid."""


# --------------------------------------------------------------------------
# Data sets and leakage
# --------------------------------------------------------------------------

# Canonical ids of the data sets in this table: lower case, '-' separated.
# Aliases are matched after normalisation (see _normalise_dataset).
_DATASET_ALIASES: dict[str, str] = {
    "nih": "nih-chestxray14",  # xrv's own short name (weights "nih", file names)
    "nih-cxr14": "nih-chestxray14",
    "chestxray14": "nih-chestxray14",
    "chestx-ray14": "nih-chestxray14",
    "chestx-ray8": "nih-chestxray14",
    "pc": "padchest",  # xrv short name
    "chex": "chexpert",  # xrv short name
    "mimic": "mimic-cxr",
    "mimic-cxr-jpg": "mimic-cxr",
    "google": "google-nih",  # xrv short name (the 'all' file name)
    "nih-google": "google-nih",
    "open-i": "openi",
    "rsna-pneumonia-detection-challenge": "rsna-pneumonia",
    "ranzcr": "ranzcr-clip",
    "siim-acr": "siim-acr-pneumothorax",
    "siim": "siim-acr-pneumothorax",
}

# Data sets whose images are (a subset of) another collection's images.
_DERIVED_FROM: dict[str, frozenset[str]] = {
    # xrv NIH_Google_Dataset: "A subset of the NIH ChestX-ray14 dataset that
    # has been re-annotated by radiologists at Google" (Majkowska et al. 2019).
    "google-nih": frozenset({"nih-chestxray14"}),
    # xrv RSNA_Pneumonia_Dataset: "A subset of the NIH ChestX-ray14 images
    # re-annotated ... for the 2018 RSNA Pneumonia Detection Challenge".
    "rsna-pneumonia": frozenset({"nih-chestxray14"}),
    # RANZCR CLiP (Tang et al. 2021, "CLiP, catheter and line position
    # dataset", Scientific Data): line labels drawn on NIH ChestX-ray14 images.
    "ranzcr-clip": frozenset({"nih-chestxray14"}),
    # SIIM-ACR Pneumothorax (Filice et al. 2020, "Crowdsourcing pneumothorax
    # annotations ... on the NIH chest X-ray dataset", J Digit Imaging).
    "siim-acr-pneumothorax": frozenset({"nih-chestxray14"}),
    # xrv CheXlocalize_Dataset: "the official CheXpert validation and test
    # image sets" with masks.
    "chexlocalize": frozenset({"chexpert"}),
}


def _normalise_dataset(name: str) -> str:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if not key:
        raise ValueError("data-set name is empty")
    return _DATASET_ALIASES.get(key, key)


def underlying_datasets(name: str) -> frozenset[str]:
    """The canonical id of ``name`` plus every image collection it is built on.

    Unknown names stand for themselves (normalised), so two releases naming
    the same unknown source still overlap.
    """
    canonical = _normalise_dataset(name)
    found = {canonical}
    pending = [canonical]
    while pending:
        for parent in _DERIVED_FROM.get(pending.pop(), ()):
            if parent not in found:
                found.add(parent)
                pending.append(parent)
    return frozenset(found)


def _expand(names: Iterable[str]) -> set[str]:
    return set().union(*(underlying_datasets(n) for n in names))


def leakage_overlap(card: ModelCard, source_datasets: Iterable[str]) -> set[str]:
    """Image collections both in the model's training data and in the sources.

    An empty set means the model never saw the release's source images
    (as far as the card and the derivation table above know).
    """
    if isinstance(source_datasets, str):
        raise TypeError("source_datasets must be a list of names, not one string")
    return _expand(card.training_datasets) & _expand(source_datasets)



# --------------------------------------------------------------------------
# torchxrayvision's published DenseNet121 weights
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class XrvWeights:
    """One entry of torchxrayvision's ``models.model_urls`` (v1.5.7)."""

    name: str
    weights_url: str
    training_datasets: tuple[str, ...]
    outputs: tuple[str, ...]  # '' = output not trained, as in xrv's "labels"
    input_size: int = 224  # model_urls[...]["input_resolution"]
    seed: int = 0  # every file name ends "-seed0-best.pt"


_XRV_URL = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
_XRV_TARGETS = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema",
    "Emphysema", "Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening",
    "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
    "Lung Opacity", "Enlarged Cardiomediastinum",
)  # fmt: skip


def _trained(*names: str) -> tuple[str, ...]:
    """xrv's 18-slot label list with '' for every output not in ``names``."""
    return tuple(t if t in names else "" for t in _XRV_TARGETS)


_NIH_LABELS = _XRV_TARGETS[:14]
_CHEX_LABELS = (
    "Atelectasis", "Consolidation", "Pneumothorax", "Edema", "Effusion", "Pneumonia",
    "Cardiomegaly", "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
)  # fmt: skip

# Data sets: from the weights file names (the tokens before "-densenet121"),
# where "kaggle" is the RSNA Pneumonia Challenge, as the 'all' description
# ("nih-pc-chex-mimic_ch-google-openi-rsna") and DenseNet's docstring
# ("densenet121-res224-rsna  # RSNA Pneumonia Challenge") say.
# Outputs: model_urls[name]["labels"].
XRV_WEIGHTS: Mapping[str, XrvWeights] = types.MappingProxyType(
    {
        w.name: w
        for w in (
            XrvWeights(
                "all",
                _XRV_URL + "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("nih-chestxray14", "padchest", "chexpert", "mimic-cxr", "google-nih", "openi", "rsna-pneumonia"),
                _XRV_TARGETS,
            ),
            XrvWeights(
                "nih",
                _XRV_URL + "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("nih-chestxray14",),
                _trained(*_NIH_LABELS),
            ),
            XrvWeights(
                "pc",
                _XRV_URL + "pc-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("padchest",),
                _trained(*_NIH_LABELS, "Fracture"),
            ),
            XrvWeights(
                "chex",
                _XRV_URL + "chex-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("chexpert",),
                _trained(*_CHEX_LABELS),
            ),
            XrvWeights(
                "mimic_nb",
                _XRV_URL + "mimic_nb-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("mimic-cxr",),
                _trained(*_CHEX_LABELS),
            ),
            XrvWeights(
                "mimic_ch",
                _XRV_URL + "mimic_ch-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("mimic-cxr",),
                _trained(*_CHEX_LABELS),
            ),
            XrvWeights(
                "rsna",
                _XRV_URL + "kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                ("rsna-pneumonia",),
                _trained("Pneumonia", "Lung Opacity"),
            ),
        )
    }
)


def _xrv_entry(name: str) -> XrvWeights:
    try:
        return XRV_WEIGHTS[name]
    except KeyError:
        raise ModelSpecError(
            f"unknown torchxrayvision weights {name!r}; known: {', '.join(XRV_WEIGHTS)}"
        ) from None


def weights_filename(name: str) -> str:
    """The file name torchxrayvision stores weights ``name`` under."""
    return _xrv_entry(name).weights_url.rsplit("/", 1)[1]


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


# --------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_metrics(value: object) -> bool:
    """Numbers, possibly grouped (e.g. per-class AUROC) under string keys."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_metrics(v) for k, v in value.items())
    return _is_int(value) or isinstance(value, float)


_CARD_CHECKS: dict[str, tuple[str, Any]] = {
    "model_id": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "architecture": ("a string", lambda v: isinstance(v, str)),
    "training_datasets": (
        "a non-empty list of data-set names",
        lambda v: _is_str_list(v) and bool(v) and all(v),
    ),
    "training_fingerprint": (
        "null or a 64-character lower-case hex sha256",
        lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)),
    ),
    "outputs": ("a non-empty list of strings ('' = untrained)", lambda v: _is_str_list(v) and bool(v)),
    "input_size": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "normalisation": ("a string", lambda v: isinstance(v, str)),
    "validation_metrics": ("an object of numbers (nesting allowed)", lambda v: isinstance(v, dict) and _is_metrics(v)),
    "seed": ("null or an integer", lambda v: v is None or _is_int(v)),
    "library_versions": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in (*v, *v.values())),
    ),
    "source": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
}


def _check_card_fields(values: Mapping[str, object], where: str) -> None:
    for key in values:
        if key not in _CARD_CHECKS:
            raise ModelCardError(f"{where}: unknown key {key!r} (expected: {', '.join(_CARD_CHECKS)})")
    for key, (expected, check) in _CARD_CHECKS.items():
        if key not in values:
            raise ModelCardError(f"{where}: missing key {key!r} ({expected})")
        if not check(values[key]):
            raise ModelCardError(f"{where}: key {key!r} must be {expected}, got {values[key]!r}")


@dataclass(frozen=True)
class ModelCard:
    """What a model is and what it was trained on; saved as ``<ckpt>.card.json``."""

    model_id: str
    architecture: str
    training_datasets: list[str]
    training_fingerprint: str | None
    outputs: list[str]
    input_size: int
    normalisation: str
    validation_metrics: dict
    seed: int | None
    library_versions: dict[str, str]
    source: str

    def __post_init__(self) -> None:
        _check_card_fields(dataclasses.asdict(self), "ModelCard")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def save(self, path: Path | str) -> None:
        """Write the card to ``path`` atomically (readers never see half a card)."""
        atomic_write(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: Path | str) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelCardError(f"{path}: model card not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelCardError(f"{path}: cannot read model card: {exc}") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"{path}: a model card must be a JSON object, got {type(data).__name__}")
        _check_card_fields(data, str(path))
        return cls(**data)


def card_path(checkpoint: Path | str) -> Path:
    """The card file that belongs beside ``checkpoint``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + CARD_SUFFIX)


def current_library_versions() -> dict[str, str]:
    """Versions that determine how a model was built, for its card."""
    from synthgate import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchxrayvision": importlib.metadata.version("torchxrayvision"),
        "synthgate": __version__,
    }



# --------------------------------------------------------------------------
# Safe loading
# --------------------------------------------------------------------------



def xrv_model_id(name: str, path: Path | str) -> str:
    """Cache id of torchxrayvision weights ``name`` stored at ``path``."""
    return f"xrv:{name}:{sha256_file(Path(path))[:16]}"


def checkpoint_model_id(path: Path | str) -> str:
    """Cache id of a synthgate checkpoint: changes whenever its bytes do."""
    return f"ckpt:{sha256_file(Path(path))[:16]}"


def build_densenet(num_classes: int) -> torch.nn.Module:
    """A freshly initialised torchxrayvision DenseNet121 (1 input channel)."""
    return import_xrv().models.DenseNet(num_classes=num_classes, in_channels=1)


def xrv_module_classes() -> list[type]:
    """Every class a pickled ``xrv.models.DenseNet`` refers to.

    Found with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on
    ``torch.save(xrv.models.DenseNet(num_classes=18, in_channels=1), f)``.
    """
    xrv_models = import_xrv().models
    nn = torch.nn
    return [
        xrv_models.DenseNet, xrv_models._DenseBlock, xrv_models._DenseLayer, xrv_models._Transition,
        nn.Sequential, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Linear,
    ]  # fmt: skip


def _global_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _legacy_allowed_globals() -> dict[str, Any]:
    """Globals of a whole DenseNet pickled in torch's pre-1.6 (non-zip) format.

    Besides the module classes: tensor rebuilders and containers the default
    pickler emits, and the no-op ``_get_thnn_function_backend`` that torch<1.5
    stored as every module's ``_backend``.  Storage types (``torch.FloatStorage``)
    are resolved by torch itself before this list is consulted.
    """
    from torch.nn.backends.thnn import _get_thnn_function_backend

    allowed: list[Any] = [
        *xrv_module_classes(),
        torch._utils._rebuild_tensor_v2,
        torch._utils._rebuild_parameter,
        OrderedDict,
        set,
        _get_thnn_function_backend,
    ]
    names = {_global_name(obj): obj for obj in allowed}
    names["__builtin__.set"] = set  # protocol-2 pickles spell builtins the Python 2 way
    return names


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str):
        super().__init__(f"global {name!r} is not allowed")
        self.name = name


def _restricted_pickle_module(allowed: Mapping[str, Any]) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` that resolves only ``allowed`` globals.

    ``find_class`` is the only way a pickle reaches code, so refusing every
    other global there means nothing else can run (the approach of Python's
    "Restricting Globals" documentation).
    """

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            key = f"{module}.{name}"
            if key not in allowed:
                raise _RefusedGlobal(key)
            return allowed[key]

    module = types.ModuleType("synthgate_restricted_pickle")
    module.Unpickler = Unpickler
    module.load = lambda file, **kwargs: Unpickler(file, **kwargs).load()
    return module


def _refusal(path: Path, names: Iterable[str]) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: refused to load: it refers to {', '.join(sorted(names))}, which "
        "synthgate does not allow in weight files (unpickling it could run code)"
    )


def _load_legacy_modules(path: Path) -> Any:
    """Read a whole module pickled in torch's legacy (pre-1.6, non-zip) format.

    Such files cannot be read with ``weights_only=True`` at all: they record
    each module class with its source, and the weights-only unpickler accepts
    nothing but storages there.  torchxrayvision's published weights predate
    torch 1.6 (hence xrv's ``_non_persistent_buffers_set`` patch), so they are
    read through the restricted unpickler with the same classes allowed.
    """
    with warnings.catch_warnings():
        # torch compares the pickled class source with today's; xrv's has changed.
        warnings.simplefilter("ignore", torch.serialization.SourceChangeWarning)
        return torch.load(
            path,
            map_location="cpu",
            weights_only=False,
            pickle_module=_restricted_pickle_module(_legacy_allowed_globals()),
        )


def _torch_load(path: Path, allowed_classes: list[type]) -> Any:
    """``torch.load(weights_only=True)`` trusting ``allowed_classes`` as well.

    Any other global is refused with a ModelLoadError naming it, before it
    could run.  Legacy-format files pickling modules go through
    :func:`_load_legacy_modules`.
    """
    is_zip = zipfile.is_zipfile(path)
    try:
        if allowed_classes and not is_zip:
            return _load_legacy_modules(path)
        if is_zip:
            allowed = {_global_name(c) for c in allowed_classes}
            unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) - allowed
            if unsafe:
                raise _refusal(path, unsafe)
        with torch.serialization.safe_globals(allowed_classes):
            return torch.load(path, map_location="cpu", weights_only=True)
    except _RefusedGlobal as exc:
        raise _refusal(path, [exc.name]) from None
    except ModelLoadError:
        raise
    except Exception as exc:  # corrupt or foreign files fail in many ways inside torch.load
        named = re.search(r"GLOBAL ([\w.]+)", str(exc)) if isinstance(exc, pickle.UnpicklingError) else None
        if named:  # torch's weights-only unpickler refused it
            raise _refusal(path, [named.group(1)]) from None
        raise ModelLoadError(f"{path}: not a readable torch weights file: {exc}") from None


def _module_state(module: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Parameters and persistent buffers of an unpickled module, by walking its dicts.

    Reading ``_parameters``/``_buffers``/``_modules`` directly works for modules
    pickled by old torch (no ``_non_persistent_buffers_set``, which breaks
    ``state_dict()``) and calls no method or hook of the unpickled objects.
    """
    state: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(mod: object, prefix: str) -> None:
        if not isinstance(mod, torch.nn.Module) or id(mod) in seen:
            raise ModelLoadError(f"{path}: malformed module tree at {prefix or '<root>'!r}")
        seen.add(id(mod))
        attrs = vars(mod)
        skip = attrs.get("_non_persistent_buffers_set", set())
        tensors = {**attrs.get("_parameters", {}), **attrs.get("_buffers", {})}
        for name, value in tensors.items():
            if value is not None and name not in skip:
                state[prefix + name] = value
        for name, child in attrs.get("_modules", {}).items():
            if child is not None:
                visit(child, f"{prefix}{name}.")

    visit(module, "")
    return state


def _first(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_BAD_KEYS_SHOWN])
    return shown + (f" (+{len(keys) - _BAD_KEYS_SHOWN} more)" if len(keys) > _BAD_KEYS_SHOWN else "")


def _load_state(model: torch.nn.Module, state: Mapping[str, Any], path: Path) -> None:
    """Strictly copy ``state`` into ``model``, naming the first bad keys on failure."""
    expected = model.state_dict()
    problems = []
    if missing := expected.keys() - state.keys():
        problems.append(f"missing keys: {_first(missing)}")
    if unexpected := state.keys() - expected.keys():
        problems.append(f"unexpected keys: {_first(unexpected)}")
    if not_tensors := {k for k, v in state.items() if not isinstance(v, torch.Tensor)}:
        problems.append(f"not tensors: {_first(not_tensors)}")
    common = (expected.keys() & state.keys()) - not_tensors
    if wrong := {k for k in common if state[k].shape != expected[k].shape}:
        detail = ", ".join(
            f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in sorted(wrong)[:_BAD_KEYS_SHOWN]
        )
        problems.append(f"wrong shapes: {detail}")
    if problems:
        raise ModelLoadError(
            f"{path}: does not fit a DenseNet121 with {model.classifier.out_features} outputs: " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------
# Specs and loading
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Which model to evaluate with: xrv weights by name, or a synthgate checkpoint."""

    xrv: str | None = None
    checkpoint: Path | None = None
    weights_dir: Path | None = None  # xrv only; None = caller's default / default_weights_dir()

    def __post_init__(self) -> None:
        if (self.xrv is None) == (self.checkpoint is None):
            raise ModelSpecError("a model spec needs exactly one of 'xrv' or 'checkpoint'")
        if self.xrv is not None:
            _xrv_entry(self.xrv)
        elif self.weights_dir is not None:
            raise ModelSpecError("'weights_dir' applies only to 'xrv' weights, not to a 'checkpoint'")

    @classmethod
    def from_config(cls, table: Mapping[str, object], base_dir: Path) -> ModelSpec:
        """Build a spec from a config table; relative paths are taken from ``base_dir``."""
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in table:
            if key not in fields:
                raise ModelSpecError(f"model spec: unknown key {key!r} (expected: {', '.join(fields)})")
        xrv = table.get("xrv")
        if xrv is not None and not isinstance(xrv, str):
            raise ModelSpecError(f"model spec: key 'xrv' must be a weights name, got {xrv!r}")

        def as_path(key: str) -> Path | None:
            value = table.get(key)
            if value is None:
                return None
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ModelSpecError(f"model spec: key {key!r} must be a path, got {value!r}")
            path = Path(value).expanduser()
            return path if path.is_absolute() else Path(base_dir) / path

        return cls(xrv=xrv, checkpoint=as_path("checkpoint"), weights_dir=as_path("weights_dir"))


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate: eval mode, on CPU, returning raw logits."""

    module: torch.nn.Module
    card: ModelCard
    outputs: list[str]  # one name per output column; '' = untrained
    model_id: str  # cache key: changes whenever the weight file does


def xrv_card(name: str, model_id: str) -> ModelCard:
    """The card of torchxrayvision weights ``name``, from the table above.

    Available without the weight file, so leakage can be checked before loading.
    """
    entry = _xrv_entry(name)
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


def load_xrv_weights(name: str, weights_dir: Path | str | None = None) -> LoadedModel:
    """Load torchxrayvision's published weights ``name`` from ``weights_dir``.

    Unlike ``xrv.models.DenseNet(weights=...)`` this never downloads, never
    unpickles arbitrary code, and does not set xrv's ``op_threshs``
    calibration or ``input_resolution`` auto-resizing: the module returns
    logits for images already at ``card.input_size``.
    """
    entry = _xrv_entry(name)
    directory = Path(weights_dir).expanduser() if weights_dir is not None else default_weights_dir()
    path = directory / weights_filename(name)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"torchxrayvision weights {name!r} not found: no file {path.name} in {directory}. "
            f"synthgate never downloads; on a machine with internet fetch {entry.weights_url} "
            f"and copy it into {directory} (or point weights_dir / ${WEIGHTS_DIR_ENV} at its folder)."
        )
    obj = _torch_load(path, xrv_module_classes())
    if isinstance(obj, torch.nn.Module):
        state = _module_state(obj, path)
    elif isinstance(obj, Mapping):
        state = obj
    else:
        raise ModelLoadError(f"{path}: expected a pickled torchxrayvision DenseNet, found {type(obj).__name__}")
    model = build_densenet(len(_XRV_TARGETS))
    _load_state(model, state, path)
    card = xrv_card(name, xrv_model_id(name, path))
    return LoadedModel(model.eval(), card, list(card.outputs), card.model_id)


def save_checkpoint(model: torch.nn.Module, card: ModelCard, path: Path | str) -> ModelCard:
    """Save ``model``'s state dict to ``path`` and its card beside it.

    The card is stored with ``model_id`` set to the checkpoint's cache id, so a
    card copied next to other weights is caught at load time.  Returns that card.
    """
    path = Path(path)
    if card.architecture != ARCHITECTURE:
        raise ValueError(f"card architecture {card.architecture!r} is not {ARCHITECTURE!r}")
    if model.classifier.out_features != len(card.outputs):
        raise ValueError(
            f"model has {model.classifier.out_features} outputs but the card names {len(card.outputs)}"
        )
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write(path, buffer.getvalue())
    saved = dataclasses.replace(card, model_id=checkpoint_model_id(path))
    saved.save(card_path(path))
    return saved


def load_checkpoint(path: Path | str) -> LoadedModel:
    """Load a synthgate checkpoint (plain state dict) and the card beside it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    card_file = card_path(path)
    if not card_file.is_file():
        raise ModelCardError(
            f"{path}: no model card at {card_file}; synthgate checkpoints are written "
            "with synthgate.models.zoo.save_checkpoint, which puts the card beside them"
        )
    card = ModelCard.load(card_file)
    if card.architecture != ARCHITECTURE:
        raise ModelCardError(f"{card_file}: architecture {card.architecture!r} is not {ARCHITECTURE!r}")
    model_id = checkpoint_model_id(path)
    if card.model_id.startswith("ckpt:") and card.model_id != model_id:
        raise ModelCardError(
            f"{card_file}: card is for {card.model_id} but {path.name} is {model_id}; "
            "the card belongs to a different checkpoint"
        )
    state = _torch_load(path, [])
    if not isinstance(state, Mapping):
        raise ModelLoadError(f"{path}: expected a state dict, found {type(state).__name__}")
    model = build_densenet(len(card.outputs))
    _load_state(model, state, path)
    return LoadedModel(model.eval(), card, list(card.outputs), model_id)


def load_model(spec: ModelSpec | Mapping[str, object]) -> LoadedModel:
    """Load the model a spec names (a mapping is read relative to the cwd)."""
    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_config(spec, Path.cwd())
    if spec.xrv is not None:
        return load_xrv_weights(spec.xrv, spec.weights_dir)
    return load_checkpoint(spec.checkpoint)

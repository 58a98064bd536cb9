"""Reading weight files without running their code, and checking they fit the model.

Why: a weight file is a pickle, and unpickling an arbitrary pickle runs arbitrary
code.  Every file synthgate reads (torchxrayvision's published weights, its own
checkpoints, a file someone dropped in the weights folder) goes through here: it
is unpickled only with an allow-list of the classes and functions such files
really contain (torch's weights-only unpickler for zip files, a restricted
unpickler for torch's legacy format that xrv's weights use), and its tensors are
copied into the model only when every key and shape fits, with the first bad
keys named.  The loaders in :mod:`synthgate.models.loading` build on this.
"""

from __future__ import annotations

import pickle
import re
import types
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from synthgate.models.compat import import_xrv
from synthgate.models.errors import ModelLoadError

_BAD_KEYS_SHOWN = 5


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


def global_name(obj: Any) -> str:
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
    names = {global_name(obj): obj for obj in allowed}
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


def safe_torch_load(path: Path, allowed_classes: list[type]) -> Any:
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
            allowed = {global_name(c) for c in allowed_classes}
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


def module_state(module: torch.nn.Module, path: Path) -> dict[str, Any]:
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


def load_state(model: torch.nn.Module, state: Mapping[str, Any], path: Path) -> None:
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

"""Make torchvision / torchxrayvision importable on a CPU-only torch.

torchvision 0.28.0 ships only as a CUDA build; with the CPU torch wheel its C
extension fails to load and ``import torchvision`` raises
``operator torchvision::nms does not exist`` while registering fake kernels.
Declaring the two missing operator schemas first lets the pure-Python parts
import; torchvision.ops and torchvision.io stay unusable (we decode with Pillow).
The shim is applied only when the extension really failed to load.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

_MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_shim_library = None  # kept alive: dropping the Library object unregisters the schemas


def torchvision_extension_loads() -> bool:
    """True when torchvision's compiled operators can be loaded with this torch."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so"))
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


@functools.cache
def import_torchvision():
    """Import torchvision, registering the missing schemas only if needed."""
    global _shim_library
    import torch

    if not torchvision_extension_loads():
        _shim_library = torch.library.Library("torchvision", "DEF")
        for schema in _MISSING_SCHEMAS:
            _shim_library.define(schema)
    import torchvision

    return torchvision


@functools.cache
def import_xrv():
    """Import torchxrayvision (after torchvision is made importable)."""
    import_torchvision()
    import torchxrayvision

    return torchxrayvision

"""The gate's command-line options and ini keys: every option is settable either way."""

from __future__ import annotations

import pytest

OPTIONS = (
    ("release", "NAME|PATH", "release to gate: a name on the releases search path, or a folder with release.toml"),
    ("releases_dir", "DIR", "extra folder of releases, searched before releases/ (demo recipes come last)"),
    ("policy", "PATH", "the gate policy (default: gate-policy.toml in the rootdir, else the built-in default; "
     "demo recipes use the demo's policy)"),
    ("synthgate_cache", "DIR", "cache for built demo data, features and models (default $SYNTHGATE_CACHE or ~/.cache/synthgate)"),
    ("weights_dir", "DIR", "folder holding torchxrayvision weight files (default $SYNTHGATE_WEIGHTS_DIR)"),
    ("device", "DEVICE", "torch device for inference and training (default: cuda when available, else cpu)"),
    ("gate_summary", "PATH", "write the machine-readable gate summary (JSON) here; tables and scores go beside it"),
    ("clearance", "PATH", "where a cleared run writes its clearance record (default: beside the summary or HTML "
     "report as <stem>.clearance.json, else reports/<release>.clearance.json)"),
    ("utility_mode", "MODE", "retraining learner: probe, finetune or scratch; overrides the policy (no clearance record)"),
    ("utility_ratios", "R,R,..", "synthetic:real ratios for R+S, e.g. 1,2,3; overrides the policy (no clearance record)"),
    ("utility_sizes", "F,F,..", "fractions of the real training set, e.g. 0.1,0.5,1; overrides the policy (no clearance record)"),
    ("utility_seeds", "S,S,..", "seeds per grid cell, e.g. 0,1,2; overrides the policy (no clearance record)"),
)


def option(config: pytest.Config, name: str) -> str | None:
    """Command line first, then the ini file. An empty value given on the command line (``--policy=$UNSET``) is
    an error, never the default: it would silently gate under another policy, or write elsewhere."""
    given = config.getoption(f"synthgate_{name}")
    if given is not None and not given.strip() and name != "release":  # an empty --release says how to give one
        raise pytest.UsageError(f"--{name.replace('_', '-')} was given an empty value: give one, or leave the option out")
    return given or config.getini(f"synthgate_{name}") or None

"""The pytest plugin: options, the shared per-release fixture, and report hooks.

It only declares; everything the checks compute lives in the rest of synthgate.
"""

from __future__ import annotations

import html
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from synthgate.catalog import ReleaseNotFound, default_search_path, resolve
from synthgate.config import ConfigError
from synthgate.gate import GateFailure
from synthgate.release import load_release
from synthgate.session import GateOptions, ReleaseEvaluation, default_cache_dir

FAMILIES = {
    "integrity": "image files, manifest and labels are sound",
    "leakage": "the evaluating model never saw the generator's data",
    "fidelity": "a leakage-free model scores synthetic images like real ones",
    "utility": "training on synthetic data helps, or does not hurt",
    "distribution": "synthetic images are distributed like real ones",
    "privacy": "synthetic images are not copies of training images",
}
SUMMARY_SCHEMA_VERSION = 1
evaluation_key = pytest.StashKey["ReleaseEvaluation | None"]()

OPTIONS = (
    ("release", "NAME|PATH", "release to gate: a name on the releases search path, or a folder with release.toml"),
    ("releases_dir", "DIR", "extra folder of releases, searched before releases/ and fixtures/releases/"),
    ("synthgate_cache", "DIR", "cache for built demo data, features and models (default $SYNTHGATE_CACHE or ~/.cache/synthgate)"),
    ("weights_dir", "DIR", "folder holding torchxrayvision weight files (default $SYNTHGATE_WEIGHTS_DIR)"),
    ("device", "DEVICE", "torch device for inference and training (default: cuda when available, else cpu)"),
    ("gate_summary", "PATH", "write the machine-readable gate summary (JSON) here"),
    ("utility_mode", "MODE", "retraining learner: probe (default), finetune or scratch; overrides release.toml"),
    ("utility_ratios", "R,R,..", "synthetic:real ratios for R+S, e.g. 1,2,3; overrides release.toml"),
    ("utility_sizes", "F,F,..", "fractions of the real training set, e.g. 0.1,0.5,1; overrides release.toml"),
    ("utility_seeds", "S,S,..", "seeds per grid cell, e.g. 0,1,2; overrides release.toml"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("synthgate", "synthgate quality gate")
    for name, metavar, help_text in OPTIONS:
        group.addoption(f"--{name.replace('_', '-')}", dest=f"synthgate_{name}", metavar=metavar, help=help_text)
        parser.addini(f"synthgate_{name}", help_text)


def option(config: pytest.Config, name: str) -> str | None:
    """Command line first, then the ini file."""
    return config.getoption(f"synthgate_{name}") or config.getini(f"synthgate_{name}") or None


def pytest_configure(config: pytest.Config) -> None:
    for family, description in FAMILIES.items():
        config.addinivalue_line("markers", f"{family}: gate criteria: {description}")
    config.addinivalue_line("markers", "slow: gate criteria that train models")
    config.addinivalue_line("markers", "gate_criterion(name): parametrise a check by the classes that declare criterion `name`")
    config.stash[evaluation_key] = None
    config.pluginmanager.register(GateRecorder(config), "synthgate-recorder")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlReportHooks(config), "synthgate-html")


def _open_evaluation(config: pytest.Config) -> ReleaseEvaluation:
    name = option(config, "release")
    if not name:
        raise pytest.UsageError(
            "no release given: run e.g. `pytest quality_checks --release=demo` "
            "(a release name or a folder with release.toml), or set synthgate_release in the ini file"
        )
    cache_dir = Path(option(config, "synthgate_cache") or default_cache_dir())
    extra = [Path(option(config, "releases_dir"))] if option(config, "releases_dir") else []
    search_path = default_search_path(Path(config.rootpath), extra)
    weights = option(config, "weights_dir")
    options = GateOptions(
        cache_dir=cache_dir,
        weights_dir=Path(weights) if weights else None,
        device=option(config, "device"),
        utility_overrides=_utility_overrides(config),
    )
    try:
        return ReleaseEvaluation(load_release(resolve(name, search_path, cache_dir)), options)
    except (ReleaseNotFound, ConfigError) as error:
        raise pytest.UsageError(str(error)) from None


def _utility_overrides(config: pytest.Config) -> dict:
    overrides = {}
    for field, convert in (("mode", str), ("ratios", float), ("sizes", float), ("seeds", int)):
        value = option(config, f"utility_{field}")
        if value is None:
            continue
        try:
            overrides[field] = value if field == "mode" else tuple(convert(v) for v in value.split(","))
        except ValueError:
            raise pytest.UsageError(f"--utility-{field}: expected comma-separated numbers, got {value!r}") from None
    if overrides.get("mode", "probe") not in ("probe", "finetune", "scratch"):
        raise pytest.UsageError(f"--utility-mode: expected probe, finetune or scratch, got {overrides['mode']!r}")
    return overrides


def evaluation_of(config: pytest.Config) -> ReleaseEvaluation:
    """The session's release evaluation, opened on first use (one clear error if the release is bad)."""
    if config.stash[evaluation_key] is None:
        config.stash[evaluation_key] = _open_evaluation(config)
    return config.stash[evaluation_key]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise each criterion check by the classes that declare a threshold for it."""
    marker = metafunc.definition.get_closest_marker("gate_criterion")
    if marker is None or "criterion" not in metafunc.fixturenames:
        return
    criteria = [c for c in evaluation_of(metafunc.config).release.criteria if c.name == marker.args[0]]
    metafunc.parametrize("criterion", criteria or [None], ids=[c.class_name for c in criteria] or ["not-declared"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Open the release before any test runs; drop criteria no class declares (reported, not gated)."""
    if any("release_evaluation" in getattr(item, "fixturenames", ()) for item in items):
        evaluation_of(config)
    undeclared = [i for i in items if getattr(i, "callspec", None) and i.callspec.params.get("criterion", 0) is None]
    if undeclared:
        config.hook.pytest_deselected(items=undeclared)
        items[:] = [item for item in items if item not in undeclared]


@pytest.fixture(scope="session")
def release_evaluation(pytestconfig: pytest.Config) -> ReleaseEvaluation:
    """The release under test with every result the gate computes, shared by all checks."""
    return evaluation_of(pytestconfig)


@pytest.fixture(scope="session")
def evaluated_release(release_evaluation: ReleaseEvaluation) -> ReleaseEvaluation:
    """The release, for checks that measure with the model: only once integrity and leakage passed.

    A score computed on unsound files, or by a model that saw the generator's data,
    means nothing; such checks are reported as not evaluated (the gate is blocked anyway).
    """
    if not release_evaluation.integrity.ok:
        failed = sorted(check for check, found in release_evaluation.integrity.problems.items() if found)
        pytest.skip(f"not evaluated: the release failed integrity ({', '.join(failed)})")
    leaks = sorted(check for check, found in release_evaluation.leakage.items() if found)
    if leaks:
        pytest.skip(f"not evaluated: leakage found ({', '.join(leaks)})")
    return release_evaluation


def _rows_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="synthgate-offenders"><tr>{head}</tr>{body}</table>'


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or call.when != "call":
        return
    report.synthgate_message = str(call.excinfo.value)
    if isinstance(call.excinfo.value, GateFailure):
        report.longrepr = f"{item.nodeid}\n{call.excinfo.value}"  # the verdict, not a traceback
    if isinstance(call.excinfo.value, GateFailure) and call.excinfo.value.rows and item.config.pluginmanager.hasplugin("html"):
        from pytest_html import extras

        report.extras = [*getattr(report, "extras", []), extras.html(_rows_table(call.excinfo.value.rows))]


def versions() -> dict[str, str]:
    found = {}
    for package in ("synthgate", "torch", "torchvision", "torchxrayvision", "numpy", "scikit-learn", "pytest"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def gate_summary(evaluation: ReleaseEvaluation, outcomes: dict) -> dict:
    """The machine-readable verdict: every criterion's outcome, and the release's identity."""
    criteria = [{"id": node, **result} for node, result in sorted(outcomes.items())]
    blocked = any(c["outcome"] in ("failed", "error") for c in criteria)
    complete = criteria and all(c["outcome"] == "passed" for c in criteria)
    release = evaluation.release
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "verdict": "blocked" if blocked else "cleared" if complete else "incomplete",
        "release": {
            "name": release.name,
            "path": str(release.root),
            "content_hash": evaluation.integrity.content_hash,
            "config_hash": release.config_hash,
            "images": len(release.manifest.rows),
            "class_counts": evaluation.class_counts,
            "generator": release.generator,
            "source_datasets": list(release.source_datasets),
        },
        "versions": versions(),
        "criteria": criteria,
    }


class GateRecorder:
    """Collects each criterion's outcome and writes the JSON summary at the end."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.outcomes: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.passed:
            return
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        message = getattr(report, "synthgate_message", "") or (
            report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
        )
        self.outcomes[report.nodeid] = {"outcome": outcome, "message": message}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        evaluation = self.config.stash[evaluation_key]
        target = option(self.config, "gate_summary")
        if evaluation is None or not target or hasattr(self.config, "workerinput"):
            return
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(gate_summary(evaluation, self.outcomes), indent=2) + "\n")


class HtmlReportHooks:
    """pytest-html hooks: the release's identity and versions at the top of the report."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_html_report_title(self, report) -> None:
        evaluation = self.config.stash.get(evaluation_key, None)
        if evaluation is not None:
            report.title = f"synthgate: release {evaluation.release.name}"

    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        evaluation = self.config.stash.get(evaluation_key, None)
        if evaluation is None:
            return
        release = evaluation.release
        counts = ", ".join(f"{html.escape(k)}: {v}" for k, v in evaluation.class_counts.items())
        version_list = ", ".join(f"{k} {v}" for k, v in versions().items())
        prefix.append(
            "<h2>Release</h2><table class='synthgate-release'>"
            f"<tr><th>name</th><td>{html.escape(release.name)}</td></tr>"
            f"<tr><th>content hash (sha256)</th><td><code>{evaluation.integrity.content_hash}</code></td></tr>"
            f"<tr><th>images</th><td>{len(release.manifest.rows)}</td></tr>"
            f"<tr><th>images per class</th><td>{counts}</td></tr>"
            f"<tr><th>generator</th><td>{html.escape(release.generator)}</td></tr>"
            f"<tr><th>generator source data</th><td>{html.escape(', '.join(release.source_datasets))}</td></tr>"
            f"<tr><th>versions</th><td>{html.escape(version_list)}</td></tr></table>"
        )

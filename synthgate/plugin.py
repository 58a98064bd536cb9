"""The pytest plugin: options, the shared per-release fixture, and report hooks.

It only declares; everything the checks compute lives in the rest of synthgate.
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from synthgate import clearance
from synthgate.reporting import report as reporting
from synthgate.catalog import ReleaseNotFound, default_search_path, resolve
from synthgate.config.toml import ConfigError
from synthgate.gate.verdicts import GateFailure, Limit, judged_number, measure
from synthgate.config.release import CRITERIA, Criterion, load_release
from synthgate.reporting.report import FAMILIES
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
from synthgate.storage import default_cache_dir, write_json

evaluation_key = pytest.StashKey["ReleaseEvaluation | None"]()
limit_key = pytest.StashKey[Limit]()

OPTIONS = (
    ("release", "NAME|PATH", "release to gate: a name on the releases search path, or a folder with release.toml"),
    ("releases_dir", "DIR", "extra folder of releases, searched before releases/ (demo recipes come last)"),
    ("synthgate_cache", "DIR", "cache for built demo data, features and models (default $SYNTHGATE_CACHE or ~/.cache/synthgate)"),
    ("weights_dir", "DIR", "folder holding torchxrayvision weight files (default $SYNTHGATE_WEIGHTS_DIR)"),
    ("device", "DEVICE", "torch device for inference and training (default: cuda when available, else cpu)"),
    ("gate_summary", "PATH", "write the machine-readable gate summary (JSON) here; tables and scores go beside it"),
    ("clearance", "PATH", "where a cleared run writes its clearance record (default: beside the summary or HTML "
     "report as <stem>.clearance.json, else reports/<release>.clearance.json)"),
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
    recorder = GateRecorder(config)
    config.pluginmanager.register(recorder, "synthgate-recorder")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlReportHooks(config, recorder), "synthgate-html")


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


def _undeclared(item: pytest.Item) -> bool:
    """A criterion check that no class declares: reported as not declared, never a gate check."""
    return bool(getattr(item, "callspec", None)) and item.callspec.params.get("criterion", 0) is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Open the release before any test runs; drop criteria no class declares (reported, not gated)."""
    if any("release_evaluation" in getattr(item, "fixturenames", ()) for item in items):
        evaluation_of(config)
    undeclared = [item for item in items if _undeclared(item)]
    if undeclared:
        config.hook.pytest_deselected(items=undeclared)
        items[:] = [item for item in items if item not in undeclared]


@pytest.fixture(scope="session")
def release_evaluation(pytestconfig: pytest.Config) -> ReleaseEvaluation:
    """The release under test with every result the gate computes, shared by all checks."""
    return evaluation_of(pytestconfig)


def skip_unless_configured(evaluation: ReleaseEvaluation) -> None:
    """Checks that need the reference data and the model are not evaluated when release.toml lacks them."""
    if evaluation.missing_sections:
        pytest.skip(f"not evaluated: release.toml has no {' or '.join(evaluation.missing_sections)}")


@pytest.fixture(scope="session")
def evaluated_release(release_evaluation: ReleaseEvaluation) -> ReleaseEvaluation:
    """The release, for checks that measure with the model: only once integrity and leakage passed.

    A score computed on unsound files, or by a model that saw the generator's data,
    means nothing; such checks are reported as not evaluated (the gate is blocked anyway).
    """
    if not release_evaluation.integrity.ok:
        failed = sorted(check for check, found in release_evaluation.integrity.problems.items() if found)
        pytest.skip(f"not evaluated: the release failed integrity ({', '.join(failed)})")
    skip_unless_configured(release_evaluation)
    leaks = sorted(check for check, found in release_evaluation.leakage.items() if found)
    if leaks:
        pytest.skip(f"not evaluated: leakage found ({', '.join(leaks)})")
    from synthgate.models.zoo import ModelLoadError

    try:
        release_evaluation.model  # noqa: B018 - load (or train) once, so a missing file is one clear error
    except (ModelLoadError, ConfigError) as error:
        pytest.fail(f"the evaluating model could not be loaded: {error}", pytrace=False)
    return release_evaluation


@pytest.fixture
def record_limit(request: pytest.FixtureRequest):
    """``record_limit(Limit(...))``: keep a release-level number for the summary, passed or failed."""

    def record(limit: Limit) -> Limit:
        request.node.stash[limit_key] = limit
        return limit

    return record


def _rows_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="synthgate-offenders"><tr>{head}</tr>{body}</table>'


def _criterion_facts(item: pytest.Item, call: pytest.CallInfo) -> dict:
    """Which gate criterion a test is and, once its check ran, what it measured.

    Computed where the test ran and carried on its report, so an xdist controller
    (which never evaluates anything) records the same numbers as a serial run.
    """
    family = next((mark.name for mark in item.iter_markers() if mark.name in FAMILIES), None)
    criterion = item.callspec.params.get("criterion") if hasattr(item, "callspec") else None
    error = call.excinfo.value if call.excinfo else None
    judged = call.when == "call" and (error is None or isinstance(error, GateFailure))
    if isinstance(criterion, Criterion):
        facts = {"name": criterion.name, "kind": "threshold", "family": family, "class": criterion.class_name,
                 "description": CRITERIA[criterion.name][1]}
        if judged:  # measure() was just run by the check: cached, so this costs nothing
            estimate, problem = measure(evaluation_of(item.config), criterion)
            value = None if estimate is None else judged_number(criterion, estimate)
            facts.update(reporting.measured(criterion, estimate, problem, value))
        return facts
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    facts = {"name": name, "kind": "check", "family": family, "class": None, "description": name.replace("_", " ")}
    if judged:
        rows = error.rows if error else []
        facts.update(details_count=len(rows), details=rows[: reporting.DETAIL_ROWS_KEPT])
        limit = item.stash.get(limit_key, None)
        if limit is not None:
            facts.update(value=limit.value, maximum=limit.maximum, baseline=limit.baseline)
    return facts


JUNIT_PROPERTIES = ("family", "class", "value", "ci_low", "ci_high", "minimum", "maximum", "baseline", "judged_on", "judged_value")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    result = outcome.get_result()
    if call.when == "call" or not result.passed:
        result.synthgate_criterion = reporting.plain(_criterion_facts(item, call))
        if call.when == "call":  # JUnit XML reads properties from the teardown report, which copies the item's
            item.user_properties += [(k, result.synthgate_criterion[k]) for k in JUNIT_PROPERTIES
                                     if result.synthgate_criterion.get(k) is not None]
    if call.excinfo is None or call.when != "call":
        return
    result.synthgate_message = str(call.excinfo.value)
    if isinstance(call.excinfo.value, GateFailure):
        result.longrepr = f"{item.nodeid}\n{call.excinfo.value}"  # the verdict, not a traceback
    if isinstance(call.excinfo.value, GateFailure) and call.excinfo.value.rows and item.config.pluginmanager.hasplugin("html"):
        from pytest_html import extras

        result.extras = [*getattr(result, "extras", []), extras.html(_rows_table(call.excinfo.value.rows))]


def _output_stem(config: pytest.Config) -> Path | None:
    """Tables, scores and the clearance record go beside the JSON summary, else beside the HTML report."""
    target = option(config, "gate_summary") or config.getoption("htmlpath", None)
    return Path(target).with_suffix("") if target else None


class GateRecorder:
    """Collects each gate check's outcome; at the end writes the summary, tables, scores and clearance record.

    Under pytest-xdist the workers evaluate and the controller writes: each worker
    hands over its gathered report data when it finishes.
    """

    def __init__(self, config: pytest.Config):
        self.config = config
        self.criteria: dict[str, dict] = {}
        self.deselected = 0
        self.worker_outputs: list[dict] = []
        self.summary: dict | None = None
        self.data: dict | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Open the release in the main process before anything runs: with xdist, before any worker starts.

        A bad name or config is then one clear usage error, not a crash in every worker.
        """
        if option(self.config, "release") and not hasattr(self.config, "workerinput"):
            evaluation_of(self.config)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += sum(not _undeclared(item) for item in items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.passed:
            return
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        message = getattr(report, "synthgate_message", "") or (
            report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
        )
        entry = self.criteria.setdefault(report.nodeid, {"id": report.nodeid})
        entry.update(getattr(report, "synthgate_criterion", {}), outcome=outcome, message=message)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist controller: a worker finished and handed over what it evaluated."""
        output = getattr(node, "workeroutput", {}).get("synthgate")
        if output:
            self.worker_outputs.append(output)

    @pytest.hookimpl(tryfirst=True)  # before pytest-html renders the report
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not option(self.config, "release") or exitstatus == pytest.ExitCode.USAGE_ERROR:
            return
        if hasattr(self.config, "workerinput"):
            evaluation = self.config.stash[evaluation_key]
            self.config.workeroutput["synthgate"] = {
                "data": reporting.gather(evaluation) if evaluation else None, "deselected": self.deselected,
            }
            return
        evaluation = evaluation_of(self.config)  # an xdist controller opens it only now: no image is read for this
        parts = [output["data"] for output in self.worker_outputs if output["data"]]
        data = reporting.merge(parts) if parts else reporting.gather(evaluation)
        stem = _output_stem(self.config)
        named = {"summary": option(self.config, "gate_summary"), "html": self.config.getoption("htmlpath", None),
                 "junitxml": self.config.getoption("xmlpath", None)}
        artifacts = {key: str(path) for key, path in named.items() if path} | reporting.artifact_paths(stem, data)
        summary = reporting.build_summary(data, list(self.criteria.values()), self._selection(session, exitstatus), artifacts)
        reporting.write_tables(data, artifacts)
        clearance.record_clearance(summary, evaluation.release, self._clearance_path(stem, data))
        if option(self.config, "gate_summary"):
            write_json(Path(option(self.config, "gate_summary")), summary)
        self.summary, self.data = summary, data

    def _selection(self, session: pytest.Session, exitstatus: int) -> dict:
        """Whether every gate check was selected and ran; if not, why (a partial run never clears)."""
        reasons = []
        deselected = max([self.deselected, *(output["deselected"] for output in self.worker_outputs)])
        if deselected:
            chosen = [f"{flag} {value!r}" for flag, value in (("-k", self.config.option.keyword),
                                                               ("-m", self.config.option.markexpr)) if value]
            reasons.append(f"{deselected} gate checks deselected" + (f" by {' and '.join(chosen)}" if chosen else ""))
        start = self.config.invocation_params.dir
        named = [arg for arg in self.config.args if "::" in arg or (start / arg).is_file()]
        if named:
            reasons.append(f"only part of the gate was run ({', '.join(named)})")
        missing = session.testscollected - len(self.criteria)
        if missing > 0:
            reasons.append(f"{missing} collected gate checks did not run")
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            reasons.append("the run was interrupted")
        return {"complete": not reasons, "deselected": deselected, "reasons": reasons}

    def _clearance_path(self, stem: Path | None, data: dict) -> Path:
        given = option(self.config, "clearance")
        if given:
            return Path(given)
        if stem is not None:
            return Path(f"{stem}.clearance.json")
        return self.config.invocation_params.dir / "reports" / f"{data['release']['name']}.clearance.json"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.summary is None:
            return
        summary = self.summary
        colour = {"cleared": "green", "blocked": "red", "incomplete": "yellow"}[summary["verdict"]]
        terminalreporter.write_sep("=", f"synthgate: release {summary['release']['name']} {summary['verdict'].upper()}",
                                   **{colour: True, "bold": True})
        for reason in summary["verdict_reasons"]:
            terminalreporter.write_line(f"  {reason}")
        written = summary["clearance"]
        terminalreporter.write_line(
            f"  clearance record: {written['path']}" if written["written"] else f"  no clearance record: {written['reason']}"
        )


class HtmlReportHooks:
    """pytest-html hooks: a title with the verdict, and the gate's document above the test log."""

    def __init__(self, config: pytest.Config, recorder: GateRecorder):
        self.config = config
        self.recorder = recorder
        self.html_report = None

    def pytest_html_report_title(self, report) -> None:
        self.html_report = report
        if option(self.config, "release"):
            report.title = f"synthgate: release {option(self.config, 'release')}"

    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        gate = self.recorder.summary
        if gate is None:
            return
        self.html_report.title = f"synthgate: release {gate['release']['name']} — {gate['verdict'].upper()}"
        prefix.append(reporting.render_html(gate, self.recorder.data))

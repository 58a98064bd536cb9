"""The pytest plugin: options, the shared per-release gate session, and the item hooks.

It only declares; everything the checks compute lives in the rest of synthgate, and
what is required of a release comes from the criteria registry and the gate policy.
The summary, tables and clearance record are written by :mod:`synthgate.recorder`.
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from synthgate import progress
from synthgate.catalog import ReleaseNotFound, default_search_path, resolve
from synthgate.checks import CRITERION_ATTRIBUTE
from synthgate.config.settings import UTILITY_MODES, UtilitySpec, check_grid
from synthgate.config.toml import ConfigError
from synthgate.evaluation.release_evaluation import GateOptions
from synthgate.gate.criteria import FAMILIES, REGISTRY
from synthgate.gate.session import GateSession
from synthgate.gate.verdicts import GateFailure
from synthgate.options import OPTIONS, option
from synthgate.recorder import GateRecorder, HtmlReportHooks, criterion_facts
from synthgate.storage import default_cache_dir, unusable_cache

session_key = pytest.StashKey["GateSession | None"]()
measurement_key = pytest.StashKey[object]()

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("synthgate", "synthgate quality gate")
    for name, metavar, help_text in OPTIONS:
        group.addoption(f"--{name.replace('_', '-')}", dest=f"synthgate_{name}", metavar=metavar, help=help_text)
        parser.addini(f"synthgate_{name}", help_text)


def pytest_configure(config: pytest.Config) -> None:
    for family, description in FAMILIES.items():
        config.addinivalue_line("markers", f"{family}: gate criteria: {description}")
    config.addinivalue_line("markers", "gate_criterion(name): a gate check of the registry's criterion `name`")
    config.stash[session_key] = None
    recorder = GateRecorder(config, gate_session_of)
    if config.pluginmanager.register(recorder, "synthgate-recorder") is None and option(config, "release"):
        raise pytest.UsageError("-p no:synthgate-recorder: a gate run cannot be recorded without it (it keeps each "
                                "check's outcome and writes the verdict); drop that option")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlReportHooks(config, recorder), "synthgate-html")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """A gate run's long steps run inside its tests, where pytest captures stderr: progress goes to its terminal."""
    plugins = session.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    if reporter is not None and option(session.config, "release"):
        progress.route_to(progress.PytestTerminal(reporter, plugins.get_plugin("capturemanager")))


def pytest_unconfigure(config: pytest.Config) -> None:
    progress.route_to(None)  # an in-process pytest.main() of a gate leaves no route behind


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    """After pytest's own closing lines: the verdict, so that a person and a CI log see it last."""
    result = yield
    recorder = session.config.pluginmanager.get_plugin("synthgate-recorder")
    if recorder is not None:  # blocked only in a run that gates nothing
        recorder.write_last_line(session.config.pluginmanager.get_plugin("terminalreporter"))
    return result


def _open(config: pytest.Config) -> GateSession:
    name = option(config, "release")
    if not name:
        raise pytest.UsageError(
            "no release given: run e.g. `pytest quality_checks --release=demo` "
            "(a release name or a folder with release.toml), or set synthgate_release in the ini file"
        )
    cache_dir = Path(option(config, "synthgate_cache") or default_cache_dir())
    if unusable_cache(cache_dir):
        raise pytest.UsageError(unusable_cache(cache_dir))
    extra = [Path(option(config, "releases_dir"))] if option(config, "releases_dir") else []
    weights = option(config, "weights_dir")
    try:
        options = GateOptions(cache_dir=cache_dir, weights_dir=Path(weights) if weights else None,
                              device=option(config, "device"), utility_overrides=grid_overrides(config))
        located = resolve(name, default_search_path(Path(config.rootpath), extra), cache_dir)
        return GateSession(located, options, option(config, "policy"), Path(config.rootpath))
    except (ReleaseNotFound, ConfigError) as error:
        raise pytest.UsageError(str(error)) from None


def grid_overrides(config: pytest.Config) -> dict:
    """The retraining grid given on the command line, checked like the policy's (a run with it never clears)."""
    overrides = {}
    for field, convert in (("mode", str), ("ratios", float), ("sizes", float), ("seeds", int)):
        value = option(config, f"utility_{field}")
        if value is None:
            continue
        try:
            overrides[field] = value if field == "mode" else tuple(convert(v) for v in value.split(","))
        except ValueError:
            raise pytest.UsageError(f"--utility-{field}: expected comma-separated numbers, got {value!r}") from None
    if overrides.get("mode", "probe") not in UTILITY_MODES:
        raise pytest.UsageError(f"--utility-mode: expected one of {', '.join(UTILITY_MODES)}, got {overrides['mode']!r}")

    def error(key, problem):
        return pytest.UsageError(f"--utility-{key}: {problem}")

    check_grid(UtilitySpec(**{**UtilitySpec().__dict__, **overrides}), error)
    return overrides


def gate_session_of(config: pytest.Config) -> GateSession:
    """The run's gate session, opened on first use (one clear error if the release or policy is bad)."""
    if config.stash[session_key] is None:
        config.stash[session_key] = _open(config)
    return config.stash[session_key]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise each per-class check by the classes the policy (and release) require it for."""
    marker = metafunc.definition.get_closest_marker("gate_criterion")
    if marker is None or "requirement" not in metafunc.fixturenames:
        return
    spec = REGISTRY[marker.args[0]]
    if spec.per_class:
        required = gate_session_of(metafunc.config).required(spec.name)
        metafunc.parametrize("requirement", required or [None], ids=[r.class_name for r in required] or ["not-required"])


def requirement_of(item: pytest.Item):
    """The requirement a gate check judges (None: the policy does not require it for this release)."""
    if getattr(item, "callspec", None) and "requirement" in item.callspec.params:
        return item.callspec.params["requirement"]
    required = gate_session_of(item.config).required(getattr(item.function, CRITERION_ATTRIBUTE))
    return required[0] if required else None


def _not_required(item: pytest.Item) -> bool:
    return is_gate_check(item) and requirement_of(item) is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the checks the policy does not require for this release: they are not gate criteria here.

    They are not "deselected" (that is a user narrowing the gate); the summary lists what was required.
    """
    items[:] = [item for item in items if not _not_required(item)]


@pytest.fixture(scope="session")
def gate_session(pytestconfig: pytest.Config) -> GateSession:
    """The release under test, its policy and requirements, and every result the gate computes."""
    return gate_session_of(pytestconfig)


@pytest.fixture
def requirement(request: pytest.FixtureRequest):
    """The requirement a release-level check judges (per-class checks are parametrised instead)."""
    return requirement_of(request.node)


@pytest.fixture
def record_measurement(request: pytest.FixtureRequest):
    """``record_measurement(m)``: keep what a check measured for the summary, passed or failed."""

    def record(measured):
        request.node.stash[measurement_key] = measured
        return measured

    return record


def is_gate_check(item: pytest.Item) -> bool:
    """A check generated from the registry (a look-alike test of the same name does not count)."""
    return getattr(getattr(item, "function", None), CRITERION_ATTRIBUTE, None) is not None


def _rows_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="synthgate-offenders"><tr>{head}</tr>{body}</table>'


JUNIT_PROPERTIES = ("family", "class", "value", "ci_low", "ci_high", "minimum", "maximum", "baseline", "judged_on",
                    "judged_value", "source")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    result = outcome.get_result()
    if not is_gate_check(item):
        return
    if call.when == "call" or not result.passed:
        requirement = requirement_of(item)
        result.synthgate_criterion = criterion_facts(requirement, item.stash.get(measurement_key, None))
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

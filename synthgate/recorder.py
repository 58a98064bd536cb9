"""What a gate run leaves behind: each check's outcome, the verdict, the summary, tables and clearance record.

The verdict compares the requirements fixed when the run opened (registry x policy x
release) with the checks that ran and passed; a narrowed or altered run (``-k``, ``-m``,
``--deselect``, ``--ignore``, a file or node id, ``-x``, ``-o python_files``, a grid
override, an interrupt) is never cleared and writes no clearance record. A run of the
whole gate exits 0 only when cleared; a deliberately partial run keeps pytest's code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from synthgate import clearance
from synthgate.options import option
from synthgate.reporting.gather import DETAIL_ROWS_KEPT, gather, merge, plain
from synthgate.reporting.html import render_html
from synthgate.reporting.summary import artifact_paths, build_summary, write_tables
from synthgate.storage import write_json

GATE_INCOMPLETE = 6  # exit code of a whole-gate run that is neither cleared nor blocked
NARROWING_OPTIONS = (("keyword", "-k"), ("markexpr", "-m"), ("deselect", "--deselect"), ("ignore", "--ignore"),
                     ("ignore_glob", "--ignore-glob"), ("lf", "--last-failed"), ("stepwise", "--stepwise"))


def criterion_facts(requirement, measured) -> dict:
    """Which requirement a check judged and, once measured, what it measured (plain data, safe for xdist)."""
    spec = requirement.spec
    bound = "minimum" if spec.direction == "at_least" else "maximum"
    facts = {"key": requirement.key, "name": spec.name, "kind": "threshold" if spec.per_class else "check",
             "family": spec.family, "class": requirement.class_name, "description": spec.description,
             "direction": spec.direction, bound: requirement.bound, "judged_on": requirement.judge,
             "source": requirement.source}
    if measured is not None:
        facts.update(value=measured.value, ci_low=measured.low, ci_high=measured.high, n=measured.n,
                     positives=measured.positives, negatives=measured.negatives, baseline=measured.baseline,
                     baseline_text=measured.baseline_text, problem=measured.problem, note=measured.note,
                     judged_value=measured.number(requirement.judge) if not measured.problem else None,
                     details_count=len(measured.rows),
                     details=measured.rows[: DETAIL_ROWS_KEPT])
    return plain(facts)


def _output_stem(config: pytest.Config) -> Path | None:
    """Tables, scores and the clearance record go beside the JSON summary, else beside the HTML report."""
    target = option(config, "gate_summary") or config.getoption("htmlpath", None)
    return Path(target).with_suffix("") if target else None


def check_output_paths(outputs: dict[str, Path], release, policy_file: Path) -> None:
    """Refuse, before any check runs, an output that would replace something it must not (a folder, a device, a
    file of the release, the policy, another output) or that cannot be written: found at the end of a long run,
    it would lose the verdict, or overwrite what was gated."""
    protected = {release.root.resolve(): "the release folder", policy_file.resolve(): "the gate policy"}
    seen: dict[Path, str] = {}
    for what, path in outputs.items():
        target, problem = path.resolve(), ""
        if target.exists() and not target.is_file():
            problem = "exists and is not a regular file"
        elif target in protected or target.is_relative_to(release.root.resolve()):
            problem = f"is {protected.get(target) or 'inside the release folder'}: the gate never writes there"
        elif target in seen:
            problem = f"is also where {seen[target]} goes"
        else:
            parent = next(p for p in target.parents if p.exists())
            if not _writable_folder(parent):
                problem = f"cannot be written: {parent} is not a writable folder"
        if problem:
            raise pytest.UsageError(f"{what} {path}: {problem}")
        seen[target] = what


def _writable_folder(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried: permission bits say nothing to root or of /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


class GateRecorder:
    """Collects each gate check's outcome; at the end writes the summary, tables, scores and clearance record.

    Under pytest-xdist the workers evaluate and the controller writes: each worker
    hands over its gathered report data when it finishes.
    """

    def __init__(self, config: pytest.Config, gate_session_of):
        self.config = config
        self.gate_session_of = gate_session_of
        self.criteria: dict[str, dict] = {}
        self.deselected = 0
        self.worker_outputs: list[dict] = []
        self.summary: dict | None = None
        self.data: dict | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Open the release in the main process before anything runs: with xdist, before any worker starts.

        A bad name, config or policy is then one clear usage error, not a crash in every worker.
        """
        if option(self.config, "release") and not hasattr(self.config, "workerinput"):
            gate = self.gate_session_of(self.config)
            check_output_paths(self._outputs(gate.release.name), gate.release, gate.policy.file)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        facts = getattr(report, "synthgate_criterion", None)
        if facts is None or (report.when != "call" and report.passed):
            return
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        message = getattr(report, "synthgate_message", "") or (
            report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
        )
        entry = self.criteria.setdefault(report.nodeid, {"id": report.nodeid})
        entry.update(facts, outcome=outcome, message=message)

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
        gate = self.gate_session_of(self.config)
        if hasattr(self.config, "workerinput"):
            self.config.workeroutput["synthgate"] = {"data": gather(gate), "deselected": self.deselected}
            return
        parts = [output["data"] for output in self.worker_outputs if output["data"]]
        data = merge(parts) if parts else gather(gate)
        stem = _output_stem(self.config)
        artifacts = {key: str(path) for key, path in self._named_outputs().items() if path} | artifact_paths(stem, data)
        narrowed = self._narrowed(exitstatus)
        required = [r.key for r in gate.requirements]
        summary = build_summary(data, list(self.criteria.values()), required, narrowed, artifacts)
        write_tables(data, artifacts)
        clearance.record_clearance(summary, gate.release, gate.policy, self._clearance_path(stem, gate.release.name))
        if option(self.config, "gate_summary"):
            write_json(Path(option(self.config, "gate_summary")), summary)
        self.summary, self.data = summary, data
        if summary["verdict"] != "cleared" and session.exitstatus == 0 and not narrowed["deliberate"]:
            session.exitstatus = 1 if summary["verdict"] == "blocked" else GATE_INCOMPLETE

    def _narrowed(self, exitstatus: int) -> dict:
        """How this run was narrowed or altered, if at all; ``deliberate`` when the user chose a part of the gate."""
        chosen, altered = [], []
        options = self.config.option
        for name, flag in NARROWING_OPTIONS:
            value = getattr(options, name, None)
            if value:
                chosen.append(f"{flag} {value!r}" if not isinstance(value, bool) else flag)
        if getattr(options, "maxfail", 0):
            chosen.append(f"--maxfail={options.maxfail} (-x)")
        start = self.config.invocation_params.dir
        named = [arg for arg in self.config.args if "::" in arg or (start / arg).is_file()]
        if named:
            chosen.append(f"only part of the gate was named ({', '.join(named)})")
        overridden = [value.split("=")[0] for value in (getattr(options, "override_ini", None) or [])
                      if value.split("=")[0].startswith("python_")]
        if overridden:
            chosen.append(f"test discovery changed with -o ({', '.join(overridden)})")
        deselected = max([self.deselected, *(output["deselected"] for output in self.worker_outputs)])
        if deselected:
            altered.append(f"{deselected} tests deselected")
        if self.gate_session_of(self.config).grid_overrides:
            altered.append("the retraining grid was overridden on the command line")
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            altered.append("the run was interrupted")
        return {"deliberate": bool(chosen), "reasons": chosen + altered}

    def _clearance_path(self, stem: Path | None, release_name: str) -> Path:
        given = option(self.config, "clearance")
        if given:
            return Path(given)
        if stem is not None:
            return Path(f"{stem}.clearance.json")
        return self.config.invocation_params.dir / "reports" / f"{release_name}.clearance.json"

    def _named_outputs(self) -> dict[str, str | None]:
        """The outputs named on the command line or in the ini file: the summary, the HTML report, JUnit XML."""
        return {"summary": option(self.config, "gate_summary"), "html": self.config.getoption("htmlpath", None),
                "junitxml": self.config.getoption("xmlpath", None)}

    def _outputs(self, release_name: str) -> dict[str, Path]:
        """The files this run will write, by the option that names them."""
        flags = {"summary": "--gate-summary", "html": "--html", "junitxml": "--junitxml"}
        return {flags[key]: Path(path) for key, path in self._named_outputs().items() if path} | {
            "the clearance record": self._clearance_path(_output_stem(self.config), release_name)}

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.summary is None:
            return
        summary = self.summary
        colour = {"cleared": "green", "blocked": "red", "incomplete": "yellow"}[summary["verdict"]]
        written = summary["clearance"]
        terminalreporter.write_line(
            f"  clearance record: {written['path']}" if written["written"] else f"  no clearance record: {written['reason']}"
        )
        terminalreporter.write_sep("-", f"synthgate: release {summary['release']['name']} {summary['verdict'].upper()}",
                                   **{colour: True, "bold": True})
        for reason in summary["verdict_reasons"]:
            terminalreporter.write_line(f"  {reason}")
        for warning in (summary.get("resolution") or {}).get("finding_warnings") or []:
            terminalreporter.write_line(f"  resolution warning: {warning}", yellow=True)
        not_applicable = (summary.get("policy") or {}).get("not_applicable") or []
        if not_applicable:
            names = ", ".join(dict.fromkeys(entry["criterion"] for entry in not_applicable))
            terminalreporter.write_line(f"  {len(not_applicable)} criteria of the policy {not_applicable[0]['reason']} "
                                        f"({names})")

    def write_last_line(self, terminalreporter) -> None:
        """The verdict as the very last line of the run (after pytest's own counts), with why when not cleared."""
        if self.summary is None or terminalreporter is None:
            return
        verdict = self.summary["verdict"]
        colour = {"cleared": "green", "blocked": "red", "incomplete": "yellow"}[verdict]
        why = "" if verdict == "cleared" else ": " + "; ".join(self.summary["verdict_reasons"])
        terminalreporter.write_line(f"synthgate: {self.summary['release']['name']} {verdict.upper()}{why}",
                                    **{colour: True, "bold": True})


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
        prefix.append(render_html(gate, self.recorder.data))

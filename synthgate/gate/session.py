"""One gate run over one release: the release as the policy measures it, what it must pass, and the judging.

It ties the policy (:mod:`synthgate.gate.policy`) to the release evaluation: the
requirements are fixed when the run opens, before any check runs, so that what a
clearance needs never depends on which checks happened to run.
"""

from __future__ import annotations

from pathlib import Path

from synthgate.catalog import Located
from synthgate.config.release import load_release
from synthgate.config.toml import ConfigError
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
from synthgate.gate import policy as gate_policy
from synthgate.gate.criteria import INPUTS
from synthgate.gate.measurements import Measurement
from synthgate.gate.verdicts import judge
from synthgate.models.errors import ModelLoadError

# Families measured with the evaluating model: meaningless on unsound files or with a leaky model.
MODEL_FAMILIES = ("fidelity", "utility", "distribution", "privacy")


class GateSession:
    def __init__(self, located: Located, options: GateOptions, policy_option: str | None, rootdir: Path):
        release = load_release(located.folder)
        self.policy = gate_policy.load_policy(gate_policy.find_policy(policy_option, rootdir, located.policy))
        self.requirements = gate_policy.requirements(self.policy, release)
        # What the policy sets that does not apply here (label-based criteria of an unlabelled release): reported only
        self.not_applicable = gate_policy.not_applicable(self.policy, release)
        self.grid_overrides = options.utility_overrides
        release = gate_policy.apply(self.policy, release, self.requirements, self.grid_overrides)
        self.evaluation = ReleaseEvaluation(release, options)

    @property
    def release(self):
        return self.evaluation.release

    def required(self, criterion: str) -> list[gate_policy.Requirement]:
        return [r for r in self.requirements if r.criterion == criterion]

    def not_evaluated(self, requirement: gate_policy.Requirement) -> str:
        """Why a check on decoded images or with the model is not evaluated (the release is blocked anyway), or ''."""
        if not requirement.spec.on_sound_files:
            return ""
        evaluation = self.evaluation
        failed = sorted(check for check, found in evaluation.integrity.problems.items() if found)
        if failed:
            return f"not evaluated: the release failed integrity ({', '.join(failed)})"
        if requirement.spec.family not in MODEL_FAMILIES or gate_policy.missing_inputs(requirement.spec, self.release):
            return ""  # judged below: a required input that is missing is a failure, not a skip
        leaks = sorted(check for check, found in evaluation.leakage.items() if found)
        if leaks:
            return f"not evaluated: leakage found ({', '.join(leaks)})"
        return ""

    def measure(self, requirement: gate_policy.Requirement) -> Measurement:
        missing = gate_policy.missing_inputs(requirement.spec, self.release)
        if missing:
            needs = " and ".join(INPUTS[need] for need in missing)
            return Measurement.missing(f"the release does not give {needs}, and the gate policy "
                                       f"({self.policy.file.name}) does not accept it missing")
        try:
            if requirement.spec.family in MODEL_FAMILIES:
                # the model's id (its weights' hash; loads or trains it when there is no file yet): a bad model is one clear message
                self.evaluation.model_id  # noqa: B018
            measured = requirement.spec.measure(self.evaluation, requirement.class_name)
        except (ModelLoadError, ConfigError) as error:
            return Measurement.missing(f"the evaluating model could not be used: {error}")
        if measured.missing_input in self.policy.accept_missing:
            return Measurement(value=0.0, note=f"{measured.problem} (accepted by the gate policy: "
                                               f"{INPUTS[measured.missing_input]} may be missing)")
        if measured.missing_input:
            return Measurement.missing(f"{measured.problem}; the gate policy ({self.policy.file.name}) does not accept "
                                       f"{INPUTS[measured.missing_input]} missing")
        return measured

    def judge(self, requirement: gate_policy.Requirement, measured: Measurement) -> None:
        """Raises GateFailure when the requirement is not met."""
        judge(requirement, measured, self.policy.min_positives, self.policy.min_negatives)

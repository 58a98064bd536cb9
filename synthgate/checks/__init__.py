"""The gate's pytest checks, generated from the criteria registry: one test per criterion.

Each family module (``test_integrity.py``, ...) holds one test per registered criterion
of its family; the plugin parametrises per-class criteria by the classes the policy
requires. The repository's ``quality_checks/`` imports these modules, so
``pytest quality_checks`` and ``synthgate gate`` run the very same checks.
"""

from __future__ import annotations

import pytest

from synthgate.gate.criteria import CriterionSpec, of_family

CRITERION_ATTRIBUTE = "synthgate_criterion"


def _check(spec: CriterionSpec):
    def check(gate_session, requirement, record_measurement):
        reason = gate_session.not_evaluated(requirement)
        if reason:
            pytest.skip(reason)
        measured = record_measurement(gate_session.measure(requirement))
        gate_session.judge(requirement, measured)

    check.__name__ = check.__qualname__ = f"test_{spec.name}"
    check.__doc__ = f"{spec.family}: {spec.description}."
    setattr(check, CRITERION_ATTRIBUTE, spec.name)
    return pytest.mark.gate_criterion(spec.name)(check)


def define_checks(namespace: dict, family: str) -> None:
    """Put one test per criterion of ``family`` into a test module's namespace, with the family's marker."""
    namespace["pytestmark"] = [getattr(pytest.mark, family)]
    for spec in of_family(family):
        namespace[f"test_{spec.name}"] = _check(spec)

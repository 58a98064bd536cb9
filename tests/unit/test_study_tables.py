"""The real-data study's markdown tables, from the results the study saved (docs/real-data-study/)."""

import copy
import json
import sys

from tests.conftest import REPO

STUDIES = str(REPO / "studies")  # the study is a script outside the package: studies/kermany, imported as `kermany`
if STUDIES not in sys.path:
    sys.path.insert(0, STUDIES)

from kermany import tables  # noqa: E402

RESULTS = REPO / "docs" / "real-data-study" / "results-64px.json"


def test_results_table_lists_threshold_criteria_and_release_level_numbers():
    results = copy.deepcopy(json.loads(RESULTS.read_text()))
    standin = next(r for r in results["releases"] if r["name"] == "kermany-standin")
    # A release-level check as the summary now records it: a value and a maximum, no CI, no minimum.
    standin["criteria"].append({"id": "quality_checks/test_distribution.py::test_not_detectable_as_synthetic",
                                "outcome": "passed", "value": 0.498, "ci_low": None, "ci_high": None, "minimum": None,
                                "judged_on": None, "judged_value": None, "message": ""})
    text = tables.markdown(results, {})
    assert "| kermany-standin | cleared | **cleared** | - | yes |" in text
    assert "| test_pretrained_auroc[pneumonia] | 0.996 [0.994, 0.998] | point | 0.900 | passed |" in text
    assert "detectability AUROC (real vs real: 0.518 [0.482, 0.556]) | 0.498 [0.475, 0.521]" in text


def test_the_frechet_row_counts_in_real_halves_spreads_where_the_results_record_them():
    results = copy.deepcopy(json.loads(RESULTS.read_text()))
    standin = next(r for r in results["releases"] if r["name"] == "kermany-standin")
    distribution = standin["measurements"]["distribution"]
    distribution["frechet"]["all"].update(ratio=1.5, real_interval=[0.8, 1.25])
    distribution["limits"]["frechet_real_spreads_max"] = 2.0
    text = tables.markdown(results, {})
    assert "in units of a real half's (0.25) | 2.00 (ratio 1.50) | point | at most 2 |" in text


def test_a_release_skipped_in_a_profile_is_left_out_of_it_only():
    """The deliveries larger than the CI profile's held-back images run in the full study only."""
    from kermany import study

    data = REPO / "studies" / "kermany"  # the data folder is not read when the study file is loaded
    ci = study.load_study(profile="ci", data=data)
    full = study.load_study(data=data)
    assert {"kermany-standin-500", "kermany-standin-1000", "kermany-shuffled-labels"} <= set(full.releases)
    assert not {"kermany-standin-500", "kermany-standin-1000", "kermany-shuffled-labels"} & set(ci.releases)
    assert set(ci.releases) < set(full.releases) and full.releases["kermany-standin-1000"]["images"] == 1000

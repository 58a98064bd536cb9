"""The gate policy is the bar; a release can only raise it: loosening, deleting or NaN-ing a
threshold never lowers what is required, and every number is refused when it is read."""

from __future__ import annotations

import pytest

from synthgate.config.release import load_release
from synthgate.config.toml import ConfigError
from synthgate.gate.criteria import FAMILIES, REGISTRY
from synthgate.gate.policy import DEFAULT_POLICY, find_policy, load_policy, requirements
from tests.conftest import write_handmade_release

POLICY = """\
[policy]
min_positives = 3
min_negatives = 3

[criteria]
no_memorised_training_images = 0.95

[criteria."*"]
pretrained_auroc = { min = 0.8, judge = "ci_low" }
mix_minus_real_auroc = { min = -0.02, judge = "ci_high" }

[utility]
seeds = [0, 1, 2]
"""


def _release(tmp_path, criteria: str = ""):
    root = write_handmade_release(tmp_path / "release")
    if criteria:
        with open(root / "release.toml", "a") as config:
            config.write("\n" + criteria)
    return load_release(root)


def _policy(tmp_path, text: str = POLICY):
    path = tmp_path / "gate-policy.toml"
    path.write_text(text)
    return load_policy(path)


def _keys(required) -> dict[str, tuple]:
    return {r.key: (r.bound, r.judge, r.source) for r in required}


def test_every_criterion_is_declared_once_with_what_the_gate_needs_to_judge_it():
    for name, spec in REGISTRY.items():
        assert spec.family in FAMILIES, name
        assert spec.description and spec.direction in ("at_least", "at_most"), name
        assert callable(spec.measure), name
        low, high = spec.bounds
        assert low <= high, name
    assert {spec.family for spec in REGISTRY.values()} == set(FAMILIES)


def test_the_policy_requires_its_criteria_for_every_class_and_the_fixed_checks_always(tmp_path):
    required = _keys(requirements(_policy(tmp_path), _release(tmp_path)))
    assert required["pretrained_auroc[soft tissue mass]"] == (0.8, "ci_low", "policy")
    assert required["no_memorised_training_images"] == (0.95, "point", "policy")
    fixed = [name for name, spec in REGISTRY.items() if spec.fixed is not None]
    assert fixed and all(required[name] == (0.0, "point", "fixed") for name in fixed)


def test_a_release_may_tighten_a_threshold_and_add_one(tmp_path):
    release = _release(tmp_path, '[criteria."soft tissue mass"]\npretrained_auroc = { min = 0.9, judge = "ci_low" }\n'
                                 'train_on_synthetic_auroc = 0.7\n')
    required = _keys(requirements(_policy(tmp_path), release))
    assert required["pretrained_auroc[soft tissue mass]"] == (0.9, "ci_low", "release")
    assert required["train_on_synthetic_auroc[soft tissue mass]"] == (0.7, "point", "release")


@pytest.mark.parametrize("criteria, words", [
    ('[criteria."soft tissue mass"]\npretrained_auroc = { min = 0.5, judge = "ci_low" }', "lower than the gate policy's"),
    ('[criteria."soft tissue mass"]\npretrained_auroc = { min = 0.9, judge = "ci_high" }', "more lenient"),
    ('[criteria."soft tissue mass"]\npretrained_auroc = { min = 0.8, judge = "point" }', "more lenient"),
    ("[criteria]\nno_memorised_training_images = 0.99", "higher than the gate policy's"),
])
def test_a_release_cannot_loosen_the_policy(tmp_path, criteria, words):
    with pytest.raises(ConfigError) as error:
        requirements(_policy(tmp_path), _release(tmp_path, criteria))
    message = str(error.value)
    assert words in message and "release.toml" in message and "gate-policy.toml" in message


@pytest.mark.parametrize("criteria", [
    '[criteria."soft tissue mass"]\npretrained_auroc = nan',
    '[criteria."soft tissue mass"]\npretrained_auroc = { min = inf }',
    '[criteria."soft tissue mass"]\npretrained_auroc = -5.0',
    '[criteria."soft tissue mass"]\nsynthetic_minus_real_auroc = -3.0',
    "[criteria]\nno_memorised_training_images = nan",
    "[criteria]\nno_memorised_training_images = 1.0",
    "[criteria]\nno_mode_collapse = 1.0",
    "[criteria]\nimages_decode = 3",
    '[criteria."*"]\npretrained_auroc = 0.9',
    '[criteria."no such class"]\npretrained_auroc = 0.9',
    '[criteria."soft tissue mass"]\npretrained_aurok = 0.9',
])
def test_nan_out_of_range_and_unknown_thresholds_are_refused_naming_the_key(tmp_path, criteria):
    with pytest.raises(ConfigError) as error:
        requirements(_policy(tmp_path), _release(tmp_path, criteria))
    assert "release.toml" in str(error.value) and "criteria" in str(error.value)


@pytest.mark.parametrize("section", ["[utility]\nratios = [0.001]", "[distribution]\nduplicate_similarity = 0.5",
                                     "[privacy]\npixel_similarity_max = 1.0", "[statistics]\nn_boot = 100",
                                     "[integrity]\nblank_std = nan"])
def test_how_the_gate_measures_is_not_the_releases_to_set(tmp_path, section):
    root = write_handmade_release(tmp_path / "release")
    with open(root / "release.toml", "a") as config:
        config.write("\n" + section + "\n")
    with pytest.raises(ConfigError, match="gate policy"):
        load_release(root)


@pytest.mark.parametrize("text, key", [
    (POLICY.replace("min = 0.8", "min = nan"), "pretrained_auroc"),
    (POLICY.replace("min = 0.8", "min = 1.5"), "pretrained_auroc"),
    (POLICY.replace("= 0.95", "= inf"), "no_memorised_training_images"),
    (POLICY + "ratios = [0.001]\n", "ratios"),
    (POLICY + "ratios = [-1.0]\n", "ratios"),
    (POLICY + "sizes = [0.0]\n", "sizes"),
    (POLICY + "sizes = [1.5]\n", "sizes"),
    (POLICY.replace("seeds = [0, 1, 2]", "seeds = [0]"), "seeds"),
    (POLICY.replace("min_positives = 3", "min_positives = 0"), "min_positives"),
    (POLICY + "\n[settings.distribution]\nduplicate_similarity = nan\n", "duplicate_similarity"),
    (POLICY + "\n[settings.statistics]\nn_boot = 10\n", "n_boot"),
    (POLICY + "\n[settings]\nmemorisation_resolution = 16\n", "memorisation_resolution"),
    (POLICY.replace("[policy]", "[policy]\naccept_missing = [\"labels\"]"), "accept_missing"),
])
def test_a_policy_with_a_meaningless_number_is_refused_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as error:
        _policy(tmp_path, text)
    assert key in str(error.value) and "gate-policy.toml" in str(error.value)


def test_without_a_policy_file_the_default_judges_every_class_on_relative_criteria(tmp_path):
    assert find_policy(None, tmp_path) == DEFAULT_POLICY
    required = _keys(requirements(load_policy(DEFAULT_POLICY), _release(tmp_path)))
    per_class = {key for key in required if key.endswith("[soft tissue mass]")}
    relative = ("minus_real", "predicted_prevalence_difference")  # synthetic against real, on the same model
    assert per_class and all(any(word in key for word in relative) for key in per_class)
    assert "predicted_prevalence_difference[soft tissue mass]" in per_class


def test_the_repository_policy_wins_over_the_default_and_an_explicit_one_over_both(tmp_path):
    (tmp_path / "gate-policy.toml").write_text(POLICY)
    assert find_policy(None, tmp_path) == (tmp_path / "gate-policy.toml").resolve()
    other = tmp_path / "other.toml"
    other.write_text(POLICY)
    assert find_policy(str(other), tmp_path) == other.resolve()
    with pytest.raises(ConfigError, match="not found"):
        find_policy(str(tmp_path / "missing.toml"), tmp_path)


def test_a_class_the_policy_names_is_required_even_when_the_release_lacks_it(tmp_path):
    text = POLICY + '\n[criteria.cardiomegaly]\npretrained_auroc = 0.8\n'
    required = _keys(requirements(_policy(tmp_path, text.replace("[utility]\nseeds = [0, 1, 2]\n", "")), _release(tmp_path)))
    assert "pretrained_auroc[cardiomegaly]" in required


def test_missing_inputs_stay_required_unless_the_policy_accepts_them(tmp_path):
    release = _release(tmp_path)  # no source_images: memorisation cannot be measured
    assert "no_memorised_training_images" in _keys(requirements(_policy(tmp_path), release))
    accepting = _policy(tmp_path, POLICY.replace("[policy]", '[policy]\naccept_missing = ["source_images"]'))
    assert "no_memorised_training_images" not in _keys(requirements(accepting, release))


def test_the_policy_sets_the_resolution_copies_are_compared_at(tmp_path):
    from synthgate.gate.policy import apply

    policy = _policy(tmp_path, POLICY + "\n[settings]\nmemorisation_resolution = 256\n")
    release = _release(tmp_path)
    assert apply(policy, release, requirements(policy, release), {}).privacy.resolution == 256
    assert apply(load_policy(DEFAULT_POLICY), release, [], {}).privacy.resolution == 128  # the default: at least 128 px


@pytest.mark.parametrize("text", ["", "[policy]\nname = \"truncated\"\n", "[criteria]\n"])
def test_a_policy_that_sets_no_criteria_is_refused(tmp_path, text):
    """An emptied or truncated policy file would clear releases on the fixed checks alone."""
    path = tmp_path / "gate-policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="sets no criteria") as caught:
        load_policy(path)
    assert str(path) in str(caught.value)

"""Several releases against real images at once: the multi-class form of the detectability check."""

from __future__ import annotations

import numpy as np

from synthgate.config.toml import ConfigError


def compare_sources(evaluations: list, seed: int = 0):
    """Real images vs several releases at once: how well one classifier tells every source apart.

    The multi-class form of the detectability check (real vs each generator), on the
    features of the evaluating model all the releases must share; the real images are
    the first release's realism target (its generator's source images, else its reference).
    """
    from synthgate.measures.distances import source_identifiability

    models = {evaluation.model_id for evaluation in evaluations}
    if len(models) != 1:
        names = ", ".join(evaluation.release.name for evaluation in evaluations)
        raise ConfigError(evaluations[1].release.config_file, "model",
                          f"{names}: these releases are evaluated by different models ({', '.join(sorted(models))}); "
                          "sources can only be compared in one model's feature space")
    target_name, target = evaluations[0].realism_target
    collections = {f"real: {target_name}": target, **{e.release.name: e.synthetic for e in evaluations}}
    if len(collections) != len(evaluations) + 1:
        raise ConfigError(evaluations[0].release.config_file, "", "a release was named twice")
    first = evaluations[0]
    return source_identifiability(
        {name: first.embeddings(c).features for name, c in collections.items()},
        {name: np.asarray([f"{name}/{g}" for g in c.groups]) for name, c in collections.items()},
        seed=seed,
    )


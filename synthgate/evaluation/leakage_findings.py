"""The leakage findings of one release evaluation: which images and patients each side saw.

Gathers the image sets (reference splits, release, generator source, the evaluating
model's training images) from a release evaluation and runs the comparisons of
:mod:`synthgate.evaluation.leakage` on them, keyed by the registry's criterion names.
The comparisons come in two parts, cached apart: those between the data sets the release
is judged with (:func:`data_set_findings`), which a new or changed release reuses, and
those that involve the release's own images (:func:`release_findings`).
"""

from __future__ import annotations

from synthgate.config.toml import ConfigError

MODEL_CHECKS = ("model_never_saw_generator_source", "model_saw_no_source_images", "model_saw_no_source_patients",
                "release_holds_no_model_training_images")
# The checks that read the release's images (the rest never do, and run whatever state its files are in).
RELEASE_CHECKS = ("release_holds_no_reference_test_images", "release_holds_no_model_training_images")


def data_set_findings(evaluation) -> dict:
    """The checks that do not involve the release: the reference splits against each other and, with the
    evaluating model's images, against the generator's source images (a ``leakage.Findings`` each).

    Names, images and patients (see :mod:`synthgate.evaluation.leakage`); only the model's card
    and image list are read, never its weights. A check whose input the release does not give has
    no entry (the policy decides whether that input may be missing); one that could not be
    carried out carries its problem.
    """
    from synthgate.evaluation import leakage

    sets = _image_sets(evaluation, with_release=False)
    max_shift, cache = evaluation.release.privacy.max_shift, evaluation.options.cache_dir
    found: dict[str, leakage.Findings] = {}
    if "train" in sets:
        found["reference_splits_share_no_patients"] = leakage.shared_patients(sets["train"], sets["test"])
        found["reference_splits_share_no_images"] = leakage.shared_images(sets["train"], sets["test"], max_shift,
                                                                          near_duplicates=False)
    if "train" in sets and "source" in sets:
        reference = sets["train"].concat(sets["test"], "reference train and test")
        found["reference_holds_no_source_images"] = leakage.shared_images(sets["source"], reference, max_shift, cache_dir=cache)
        found["reference_shares_no_patients_with_source"] = leakage.shared_patients(sets["source"], reference)

    def against_model(model):
        if "source" not in sets:
            return {}
        return {"model_saw_no_source_images": leakage.shared_images(sets["source"], model, max_shift, cache_dir=cache),
                "model_saw_no_source_patients": leakage.shared_patients(sets["source"], model)}

    found.update(_model_findings(evaluation, sets, MODEL_CHECKS[:3], against_model))
    return found


def release_findings(evaluation) -> dict:
    """The checks that involve the release: its images against the reference test split and against the
    images the evaluating model learned from."""
    from synthgate.evaluation import leakage

    if evaluation.release.reference is None:  # nothing of the release's is compared with a source set alone
        return {}
    sets = _image_sets(evaluation, with_release=True)
    max_shift, cache = evaluation.release.privacy.max_shift, evaluation.options.cache_dir
    found = {"release_holds_no_reference_test_images": leakage.shared_images(sets["test"], sets["release"], max_shift,
                                                                             cache_dir=cache)}

    def against_model(model):
        return {"release_holds_no_model_training_images": leakage.shared_images(model, sets["release"], max_shift,
                                                                                cache_dir=cache)}

    found.update(_model_findings(evaluation, sets, MODEL_CHECKS[3:], against_model))
    return found


def _image_sets(evaluation, with_release: bool) -> dict:
    """The image sets at hand, hashed (and, where a reference is given, with their pixels for the near-duplicate
    search): "train" and "test" (the reference splits), "source", and "release" if asked for."""
    from synthgate.evaluation import leakage

    release = evaluation.release
    cache = evaluation.options.cache_dir
    pixels = evaluation.pixels if release.reference is not None else None  # loaded once for leakage and privacy

    def image_set(collection, what, pixel_array):
        return leakage.ImageSet.of_collection(collection, what, leakage.pixel_hashes(collection, cache), pixel_array)

    sets = {}
    if release.reference is not None:
        train, test = evaluation.reference_train, evaluation.reference_test
        sets["train"] = image_set(train, "reference train", pixels["reference"][: len(train)])
        sets["test"] = image_set(test, "reference test", pixels["reference"][len(train):])
        if with_release:
            sets["release"] = image_set(evaluation.synthetic, "the release", pixels["synthetic"])
    if release.source_images is not None:
        sets["source"] = image_set(evaluation.source_images, "generator source images",
                                   pixels["target"] if pixels is not None else None)
    return sets


def _model_findings(evaluation, sets: dict, checks: tuple[str, ...], compare) -> dict:
    """The model checks among ``checks``: its data-set names (always), then ``compare(model_image_set)`` where the
    images it saw are known; each held back with the reason where they are not, or its card is unreadable."""
    from synthgate.evaluation import leakage
    from synthgate.models.errors import ModelLoadError

    if evaluation.model_plan is None:
        return {}
    try:
        card = evaluation.model_card
        model, basis = _model_image_set(evaluation, sets)
    except (ConfigError, ModelLoadError) as error:
        return {check: leakage.Findings(problem=f"the evaluating model's card could not be read: {error}")
                for check in checks}
    names = leakage.model_saw_source(card, evaluation.release.source_datasets, images_listed=model is not None)
    found = {"model_never_saw_generator_source": names} if "model_never_saw_generator_source" in checks else {}
    if model is None:
        found.update({check: leakage.not_checked(f"{basis}; {names.note}", missing="model_image_list")
                      for check in checks if check != "model_never_saw_generator_source"})
        return found
    found.update(compare(model))
    return found


def _model_image_set(evaluation, sets: dict):
    """The images the evaluating model learned from as a ``leakage.ImageSet`` (None where they are not listed),
    and the basis of the checks that rest on its card's data-set names instead."""
    from synthgate.evaluation import leakage
    from synthgate.models.card import card_path
    from synthgate.models.plan import ReferenceModelSpec, seen_images

    plan = evaluation.model_plan
    card = evaluation.model_card
    what = "the evaluating model's training images"
    if isinstance(plan, ReferenceModelSpec):
        collection = evaluation.training_collection
        known = sets.get("train" if plan.data == "reference" else "source")  # already hashed (and loaded)
        # each image the model learned from, as a row of that set (files with the same bytes have the same pixels)
        position = {} if known is None else {digest: row for row, digest in enumerate(known.file_sha256)}
        rows = [position[digest] for digest in collection.digests] if known is not None else []
        hashes = None if known is None else tuple(known.pixel_sha256[i] for i in rows)
        pixels = None if known is None or known.pixels is None else known.pixels[rows]
        listed = seen_images(collection, plan.settings, hashes)
        return leakage.ImageSet.of_seen(listed, what, card.training_datasets, pixels,
                                        range(len(rows)) if pixels is not None else ()), ""
    if plan.xrv is not None:
        return None, (f"torchxrayvision's published weights {plan.xrv!r} list their data sets only, no "
                      f"images: the model-vs-source check {leakage.RESTS_ON_NAMES}")
    listed = card.load_seen_images(card_path(plan.checkpoint))
    if listed is None:
        return None, (f"the card of {plan.checkpoint.name} lists no images the model saw: the "
                      f"model-vs-source check {leakage.RESTS_ON_NAMES}")
    rows = leakage.images_at_hand(listed) if evaluation.release.reference is not None else []
    array = None
    if rows:
        from synthgate.data.imaging import load_pixels

        array = load_pixels(leakage.listed_collection(listed, rows, what))
    return leakage.ImageSet.of_seen(listed, what, card.training_datasets, array, rows), ""

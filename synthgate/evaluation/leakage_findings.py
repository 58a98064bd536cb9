"""The leakage findings of one release evaluation: which images and patients each side saw.

Gathers the image sets (reference splits, release, generator source, the evaluating
model's training images) from a release evaluation and runs the comparisons of
:mod:`synthgate.evaluation.leakage` on them, keyed by the registry's criterion names.
"""

from __future__ import annotations

from synthgate.config.toml import ConfigError


def leakage_findings(evaluation) -> dict:
    """Each leakage criterion's offending files, by registry name (a ``leakage.Findings`` each).

    Names, images and patients: the model's training and validation images, the reference
    splits and the release against the generator's source images and each other (see
    :mod:`synthgate.evaluation.leakage`). Only the model's card and image list are read, never
    its weights. A check whose input the release does not give has no entry (the policy decides
    whether that input may be missing); one that could not be carried out carries its problem.
    """
    from synthgate.evaluation import leakage
    from synthgate.models.errors import ModelLoadError

    release = evaluation.release
    has_reference, has_source = release.reference is not None, release.source_images is not None
    max_shift = release.privacy.max_shift
    cache = evaluation.options.cache_dir
    pixels = evaluation.pixels if has_reference else None  # the privacy checks' pixels, loaded once for both

    def image_set(collection, what, pixel_array):
        return leakage.ImageSet.of_collection(collection, what, leakage.pixel_hashes(collection, cache), pixel_array)

    found: dict[str, leakage.Findings] = {}
    sets = {}
    if has_reference:
        train, test = evaluation.reference_train, evaluation.reference_test
        sets["train"] = image_set(train, "reference train", pixels["reference"][: len(train)])
        sets["test"] = image_set(test, "reference test", pixels["reference"][len(train):])
        sets["release"] = image_set(evaluation.synthetic, "the release", pixels["synthetic"])
        found["reference_splits_share_no_patients"] = leakage.shared_patients(sets["train"], sets["test"])
        found["reference_splits_share_no_images"] = leakage.shared_images(sets["train"], sets["test"], max_shift,
                                                                          near_duplicates=False)
        found["release_holds_no_reference_test_images"] = leakage.shared_images(sets["test"], sets["release"],
                                                                                max_shift)
    if has_source:
        sets["source"] = image_set(evaluation.source_images, "generator source images",
                                   pixels["target"] if pixels is not None else None)
    if has_reference and has_source:
        reference = sets["train"].concat(sets["test"], "reference train and test")
        found["reference_holds_no_source_images"] = leakage.shared_images(sets["source"], reference, max_shift)
        found["reference_shares_no_patients_with_source"] = leakage.shared_patients(sets["source"], reference)

    model_checks = ("model_never_saw_generator_source", "model_saw_no_source_images",
                    "model_saw_no_source_patients", "release_holds_no_model_training_images")
    try:
        found.update(_model_leakage(evaluation, leakage, sets, max_shift))
    except (ConfigError, ModelLoadError) as error:
        found.update({check: leakage.Findings(problem=f"the evaluating model's card could not be read: {error}")
                      for check in model_checks})
    return found


def _model_leakage(evaluation, leakage, sets: dict, max_shift: int) -> dict:
    """The model checks of :attr:`leakage`: its data-set names, then the images (and patients) it saw."""
    from synthgate.models.card import card_path
    from synthgate.models.training import ReferenceModelSpec, seen_images

    plan = evaluation.model_plan
    if plan is None:
        return {}
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
        model = leakage.ImageSet.of_seen(listed, what, card.training_datasets, pixels,
                                         range(len(rows)) if pixels is not None else ())
        basis = ""
    elif plan.xrv is not None:
        model, basis = None, (f"torchxrayvision's published weights {plan.xrv!r} list their data sets only, no "
                              f"images: the model-vs-source check {leakage.RESTS_ON_NAMES}")
    else:
        listed = card.load_seen_images(card_path(plan.checkpoint))
        if listed is None:
            model, basis = None, (f"the card of {plan.checkpoint.name} lists no images the model saw: the "
                                  f"model-vs-source check {leakage.RESTS_ON_NAMES}")
        else:
            rows = leakage.images_at_hand(listed) if "release" in sets else []
            array = None
            if rows:
                from synthgate.evaluation.realism import load_pixels

                array = load_pixels(leakage.listed_collection(listed, rows, what))
            model, basis = leakage.ImageSet.of_seen(listed, what, card.training_datasets, array, rows), ""
    found = {"model_never_saw_generator_source": leakage.model_saw_source(card, evaluation.release.source_datasets,
                                                                          images_listed=model is not None)}
    if model is None:
        names = found["model_never_saw_generator_source"].note
        for check in ("model_saw_no_source_images", "model_saw_no_source_patients",
                      "release_holds_no_model_training_images"):
            found[check] = leakage.not_checked(f"{basis}; {names}", missing="model_image_list")
        return found
    if "source" in sets:
        found["model_saw_no_source_images"] = leakage.shared_images(sets["source"], model, max_shift)
        found["model_saw_no_source_patients"] = leakage.shared_patients(sets["source"], model)
    if "release" in sets:
        found["release_holds_no_model_training_images"] = leakage.shared_images(model, sets["release"], max_shift)
    return found

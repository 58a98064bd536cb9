"""The evaluating model of a release evaluation: its plan, card, weights, features.

A mixin of :class:`synthgate.evaluation.release_evaluation.ReleaseEvaluation` (it
reads the release, options and reference collections that class holds), kept apart
because it is one concern: which model scores the images, what it saw, and loading
it only when something must be computed (a warm run reads everything from caches).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from synthgate.config.toml import ConfigError, Table
from synthgate.data.collection import Collection
from synthgate.storage import sha256_bytes, sha256_file


class EvaluatingModel:
    """The model half of a release evaluation (``release``, ``options``, ``reference_train``, ``source_images`` come from it)."""

    def _model_plan(self):
        """Parse ``[model]`` now, so that a bad model config is reported before any test runs."""
        from synthgate.models.errors import ModelSpecError
        from synthgate.models.plan import ModelSpec, ReferenceModelSpec

        table = self.release.model
        if not table:
            return None
        if "train" in table:
            # the device is asked only when it decides the size: asking imports torch, which a warm run never needs
            on_gpu = "size" not in table and self.device.type == "cuda"
            plan = ReferenceModelSpec.from_table(Table(table, self.release.config_file, "model"), on_gpu=on_gpu)
            if plan.data == "source" and self.release.source_images is None:
                raise ConfigError(self.release.config_file, "model.train", "'source' needs [release] source_images")
            return plan
        try:
            spec = ModelSpec.from_config(table, self.release.root)
        except ModelSpecError as error:
            raise ConfigError(self.release.config_file, "model", str(error)) from None
        if spec.checkpoint is not None:
            from synthgate.models.card import card_path

            for needed, what in ((spec.checkpoint, "checkpoint"), (card_path(spec.checkpoint), "its model card")):
                if not needed.is_file():
                    raise ConfigError(self.release.config_file, "model.checkpoint", f"{needed}: {what} does not exist")
        return spec

    @cached_property
    def training_collection(self) -> Collection:
        """The images a ``train = ...`` model learns from: the reference train's backbone part, or the source images."""
        from synthgate.models.plan import backbone_collection

        if self.model_plan.data == "source":
            return self.source_images
        return backbone_collection(self.reference_train, self.model_plan.settings.seed)

    @property
    def model_outputs(self) -> tuple[str, ...]:
        return tuple(c.model_output for c in self.release.classes)

    @cached_property
    def model_card(self):
        """The evaluating model's card, read without loading (or training) the model."""
        from synthgate.models.card import ModelCard, card_path
        from synthgate.models.plan import ReferenceModelSpec, planned_card
        from synthgate.models.weights import xrv_card

        plan = self.model_plan
        if plan is None:
            raise ConfigError(self.release.config_file, "model", "no [model]: name the evaluating model")
        if isinstance(plan, ReferenceModelSpec):
            return planned_card(self.training_collection, self.model_outputs, plan.settings)
        if plan.xrv is not None:
            return xrv_card(plan.xrv, f"xrv:{plan.xrv}")
        return ModelCard.load(card_path(plan.checkpoint))

    @cached_property
    def device(self):
        from synthgate.models.embedding import pick_device

        return pick_device(self.options.device)

    @cached_property
    def model(self):
        """The evaluating model, loaded (or trained on first use) only after leakage was checked."""
        from synthgate.models.loading import load_checkpoint, load_xrv_weights
        from synthgate.models.plan import ReferenceModelSpec
        from synthgate.models.training import trained_model

        plan = self.model_plan
        if isinstance(plan, ReferenceModelSpec):
            collection = self.training_collection
            return trained_model(collection, self.model_outputs, plan.settings, self.options.cache_dir, self.device)
        if plan.xrv is not None:
            return load_xrv_weights(plan.xrv, self.options.weights_dir or plan.weights_dir)
        return load_checkpoint(plan.checkpoint)

    def _checkpoint(self) -> Path | None:
        """The evaluating model's weights file, when it has one (a trained model's, trained or not yet)."""
        from synthgate.models.plan import ReferenceModelSpec, reference_checkpoint

        plan = self.model_plan
        if isinstance(plan, ReferenceModelSpec):
            return reference_checkpoint(self.training_collection, self.model_outputs, plan.settings,
                                        self.options.cache_dir)
        return plan.checkpoint

    @cached_property
    def model_id(self) -> str:
        """The evaluating model's feature-cache id, read from its checkpoint's bytes without loading it when it exists."""
        from synthgate.models.plan import checkpoint_model_id

        checkpoint = self._checkpoint()
        return checkpoint_model_id(checkpoint) if checkpoint is not None and checkpoint.is_file() else self.model.model_id

    @cached_property
    def saved_card(self):
        """The card saved with the weights the checks used (validation metrics, images seen), read without them."""
        from synthgate.models.card import ModelCard, card_path

        checkpoint = self._checkpoint()
        if "model" in self.__dict__ or checkpoint is None or not card_path(checkpoint).is_file():
            return self.model.card
        return ModelCard.load(card_path(checkpoint))

    @cached_property
    def extractor(self):
        from synthgate.models.embedding import Extractor, default_precision

        return Extractor(
            load_model=lambda: self.model.module,
            model_id=self.model_id,
            size=self.model_card.input_size,
            cache_root=self.options.cache_dir,
            device=self.device,
            precision=default_precision(self.device),
        )

    def embeddings(self, collection: Collection):
        """Features and scores of a collection under the evaluating model (cached by image hash)."""
        return self.extractor(collection.paths, collection.digests)

    def check_class_mapping(self) -> None:
        """Refuse (ConfigError) a class mapped to an output the chosen xrv weights were not trained for.

        Runs when the evaluation opens, from the weights table alone (no file is read): an
        untrained output would score the class with noise.
        """
        from synthgate.models.weights import untrained_output_problem

        xrv = getattr(self.model_plan, "xrv", None)
        if xrv is None:
            return
        for c in self.release.classes:
            problem = untrained_output_problem(xrv, c.model_output)
            if problem:
                raise ConfigError(self.release.config_file, f"classes.{c.name}.model_output",
                                  f"class {c.name!r} is mapped to {problem}")

    def class_outputs(self) -> dict[str, int]:
        """Release class -> index of the model output it maps to (a trained one)."""
        self.check_class_mapping()
        outputs = list(self.model_card.outputs)
        missing = [c for c in self.release.classes if not c.model_output or c.model_output not in outputs]
        if missing:
            trained = ", ".join(o for o in outputs if o)
            raise ConfigError(
                self.release.config_file,
                f"classes.{missing[0].name}.model_output",
                f"class {missing[0].name!r}: {missing[0].model_output!r} is not a trained output of the model "
                f"{self.model_card.model_id} (trained outputs: {trained})",
            )
        return {c.name: outputs.index(c.model_output) for c in self.release.classes}

    @cached_property
    def model_identity(self) -> str:
        """The evaluating model as results depend on it: its card, its plan, and its checkpoint's bytes if it has one."""
        plan = self.model_plan
        checkpoint = getattr(plan, "checkpoint", None)
        parts = [self.model_card.to_json(), repr(plan), sha256_file(checkpoint) if checkpoint is not None else "-"]
        return sha256_bytes("\0".join(parts).encode("utf-8"))

"""Tasks: what a model is trained to do. Each builds its model and provides ``loss(batch)``,
``evaluate_batch(batch)`` (what its metrics need), ``metrics(outcomes)``, ``describe()`` and
``from_description(description)``; the trainer runs any of them.

``from_description`` here rebuilds any task from what ``describe()`` wrote, by its ``kind``
(an ``ensemble``'s members each by theirs).
"""

from __future__ import annotations

from typing import Any

from birnn.tasks import ensemble
from birnn.tasks.bilm import BiLMConfig, BiLMEmbedder, BiLMTask
from birnn.tasks.classifier import ClassificationTask, ClassifierConfig
from birnn.tasks.cloze import ClozeConfig, ClozeTask
from birnn.tasks.encoder_lm import EncoderLMTask
from birnn.tasks.encoders import MODELS, rebuilding
from birnn.tasks.language_model import LanguageModelTask, LMConfig
from birnn.tasks.tagging import TaggerConfig, TaggingTask

KINDS: dict[str, Any] = {
    task.kind: task
    for task in (TaggingTask, LanguageModelTask, ClozeTask, ClassificationTask, BiLMTask, EncoderLMTask)
}


def from_description(description: Any, source: str = "description") -> Any:
    """The untrained task a ``describe()`` dictionary names; ValueError naming ``source`` if it is not one."""
    if isinstance(description, dict) and description.get("kind") == ensemble.KIND:
        try:
            return ensemble.from_description(description, from_description, source)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: damaged ensemble description ({type(exc).__name__}: {exc})") from None
    if not isinstance(description, dict) or description.get("kind") not in KINDS:
        kind = description.get("kind") if isinstance(description, dict) else type(description).__name__
        raise ValueError(f"{source}: expected a task description with kind one of "
                         f"{sorted([*KINDS, ensemble.KIND])}; got {kind!r}")
    try:
        with rebuilding():  # a trained model being loaded: its weights must fit
            return KINDS[description["kind"]].from_description(description)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{source}: damaged {description['kind']} description ({type(exc).__name__}: {exc})") from None


__all__ = [
    "KINDS",
    "MODELS",
    "BiLMConfig",
    "BiLMEmbedder",
    "BiLMTask",
    "ClassificationTask",
    "ClassifierConfig",
    "ClozeConfig",
    "ClozeTask",
    "EncoderLMTask",
    "LMConfig",
    "LanguageModelTask",
    "TaggerConfig",
    "TaggingTask",
    "from_description",
]

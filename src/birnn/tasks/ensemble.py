"""An ensemble of trained taggers (or classifiers) with one label set: a product of experts.

Each member m reads the sentence through its own vocabulary and features and scores it;
the ensemble averages the scores and decodes once.

    CRF taggers:      u_t = (1/M) Σ_m u_t^m,   A = (1/M) Σ_m A^m   (start and end likewise)
                      so score(y) = (1/M) Σ_m score_m(y) and p(y | x) ∝ Π_m p_m(y | x)^(1/M),
                      decoded by Viterbi, with true marginals by forward–backward;
    softmax taggers:  u_t = (1/M) Σ_m log softmax(u_t^m)   (the normalised geometric mean per token);
    classifiers:      s   = (1/M) Σ_m log softmax(s^m).

Members must share the kind, the labels (a tagger's in any order: each member's are put in the
first member's order), the tag scheme and whether there is a CRF, and a CRF's constraints;
they may differ in everything else (seed, sizes, training data, biLM). ``TaggerEnsemble`` and
``ClassifierEnsemble`` are a ``TaggingTask`` and a ``ClassificationTask`` whose scores are these
averages, so evaluation and prediction are theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from birnn.nn.crf import CRF
from birnn.tasks.classifier import ClassificationTask
from birnn.tasks.tagging import TaggingTask

KIND = "ensemble"


class EnsembleBatch(NamedTuple):
    """One batch per member, of the same sentences in the same order; the gold labels, lengths and
    word ids that metrics read are the first member's."""

    members: tuple[Any, ...]

    @property
    def inputs(self) -> torch.Tensor:
        return self.members[0].inputs

    @property
    def targets(self) -> torch.Tensor:
        return self.members[0].targets

    @property
    def lengths(self) -> torch.Tensor:
        return self.members[0].lengths

    @property
    def tokens(self) -> int:
        return self.members[0].tokens


def _in_order(crf: CRF, order: torch.Tensor) -> dict[str, torch.Tensor]:
    """The CRF's scores and constraint masks with its tags permuted: tag k of the result is ``order[k]``."""
    order = order.to(crf.transitions.device)
    return {name: getattr(crf, name)[order][:, order] if name.startswith("trans") else getattr(crf, name)[order]
            for name in ("transitions", "start", "end", "start_allowed", "trans_allowed", "end_allowed")}


def mean_crf(crfs: Sequence[CRF], orders: Sequence[torch.Tensor] | None = None) -> CRF:
    """The CRF whose transition, start and end scores are the members' means, each member's tags
    first put in the order of the first member's (``orders[m][k]``: member m's id of tag k; None:
    the same order). The members must allow the same tag sequences."""
    k = crfs[0].num_tags
    orders = orders or [torch.arange(k)] * len(crfs)
    if any(crf.num_tags != k for crf in crfs):
        raise ValueError(f"ensemble members' CRFs have different numbers of tags: {[crf.num_tags for crf in crfs]}")
    scores = [_in_order(crf, order) for crf, order in zip(crfs, orders, strict=True)]
    masks = ("start_allowed", "trans_allowed", "end_allowed")
    if not all(torch.equal(s[name], scores[0][name]) for s in scores[1:] for name in masks):
        raise ValueError("ensemble members' CRFs allow different tag sequences")
    mean = CRF(k).to(crfs[0].transitions.device)
    with torch.no_grad():
        for name in ("transitions", "start", "end"):
            getattr(mean, name).copy_(torch.stack([s[name] for s in scores]).mean(0))
        for name in masks:
            getattr(mean, name).copy_(scores[0][name])
    return mean


def _sample(names: Sequence[str]) -> str:
    return ", ".join(names[:6]) + (f", … ({len(names)} in all)" if len(names) > 6 else "")


class _Members:
    """What both ensembles share: the members, their encoding, batching and description."""

    members: list[Any]
    model: nn.ModuleList

    def _adopt(self, members: Sequence[Any]) -> None:
        """Take the first member's vocabularies and settings (its labels are the ensemble's)."""
        self.__dict__.update({k: v for k, v in vars(members[0]).items() if k != "model"})
        self.members = list(members)
        self.model = nn.ModuleList(member.model for member in members)

    @property
    def network(self) -> Any:
        """The first member's network (its output layer defines the labels)."""
        return self.members[0].network

    def describe(self) -> dict[str, Any]:
        return {"kind": KIND, "members": [member.describe() for member in self.members]}

    def encode(self, data: Sequence[Any], source: str = "data") -> list[Any]:
        """Every member's examples of ``data``; an example is (first member's ids, all members' examples)."""
        per_member = [member.encode(data, source) for member in self.members]
        return [(examples[0][0], examples) for examples in zip(*per_member, strict=True)]

    def encode_input(self, tokens: Sequence[str]) -> Any:
        examples = tuple(member.encode_input(tokens) for member in self.members)
        return examples[0][0], examples

    def collate(self, examples: Sequence[Any]) -> Any:
        return EnsembleBatch(tuple(member.collate([e[1][k] for e in examples])
                                   for k, member in enumerate(self.members)))

    def loss(self, batch: Any) -> torch.Tensor:
        raise TypeError("an ensemble is built from trained members; it is not trained itself")

    def embed(self, batch: Any) -> Any:
        raise TypeError("an ensemble has no single feature space to embed in; embed with a member")


class TaggerEnsemble(_Members, TaggingTask):
    """``TaggerEnsemble(taggers)``: trained ``TaggingTask``s with the same tags (module docstring)."""

    def __init__(self, members: Sequence[TaggingTask]) -> None:
        first = members[0]
        for member in members[1:]:
            if set(member.tags.itos) != set(first.tags.itos) or member.scheme != first.scheme or (
                    member.config.scheme != first.config.scheme):
                raise ValueError("ensemble members must share their tags and tag scheme; got "
                                 f"{_sample(first.tags.itos)} ({first.scheme}) and "
                                 f"{_sample(member.tags.itos)} ({member.scheme})")
            if (member.network.crf is None) != (first.network.crf is None):
                raise ValueError("ensemble members must all have a CRF output or all a softmax one")
        self._adopt(members)
        # members trained on other data may number the same tags differently: tag k is member m's orders[m][k]
        self._orders = [torch.tensor([member.tags.stoi[tag] for tag in first.tags.itos]) for member in members]
        self._crf: CRF | None = None  # the mean CRF, made on first use (after the weights are loaded)

    def _scores(self, batch: EnsembleBatch) -> tuple[torch.Tensor, CRF | None]:  # type: ignore[override]
        emissions = [member._emissions(b)[..., order.to(b.inputs.device)]
                     for member, b, order in zip(self.members, batch.members, self._orders, strict=True)]
        if self.members[0].network.crf is None:
            return torch.stack([torch.log_softmax(e, dim=-1) for e in emissions]).mean(0), None
        if self._crf is None:  # members are never trained inside an ensemble: their mean stays valid
            self._crf = mean_crf([member.network.crf for member in self.members], self._orders)
        return torch.stack(emissions).mean(0), self._crf


class ClassifierEnsemble(_Members, ClassificationTask):
    """``ClassifierEnsemble(classifiers)``: trained ``ClassificationTask``s with the same labels."""

    def __init__(self, members: Sequence[ClassificationTask]) -> None:
        first = members[0]
        for member in members[1:]:
            if member.labels != first.labels:
                raise ValueError(f"ensemble members must share their labels; got {first.labels} and {member.labels}")
        self._adopt(members)

    def _logits(self, batch: EnsembleBatch, words: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        scores = [member._logits(b) for member, b in zip(self.members, batch.members, strict=True)]
        return torch.stack([torch.log_softmax(s, dim=-1) for s in scores]).mean(0)


ENSEMBLES: dict[str, Callable[[Sequence[Any]], Any]] = {"tagging": TaggerEnsemble, "classify": ClassifierEnsemble}


def ensemble(members: Sequence[Any]) -> TaggerEnsemble | ClassifierEnsemble:
    """The ensemble of at least two trained taggers or classifiers of one kind."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members; got {len(members)}")
    kinds = sorted({getattr(member, "kind", type(member).__name__) for member in members})
    if len(kinds) != 1 or kinds[0] not in ENSEMBLES:
        raise ValueError(f"ensemble members must all be taggers or all classifiers; got {', '.join(kinds)}")
    if any(isinstance(member, _Members) for member in members):
        raise ValueError("an ensemble's member cannot itself be an ensemble: list its members instead")
    return ENSEMBLES[kinds[0]](members)


def from_description(description: dict[str, Any], rebuild: Callable[[Any, str], Any], source: str) -> Any:
    """The untrained ensemble of a ``describe()`` dictionary; ``rebuild(member, source)`` makes each member."""
    members = description["members"]
    if not isinstance(members, list):
        raise TypeError(f"members must be a list; got {type(members).__name__}")
    return ensemble([rebuild(member, f"{source}, member {k}") for k, member in enumerate(members)])

"""Two registered embedders' vectors over the same images (relational vs attribute), for the
similarity space and mining. Reads finished embedding runs only: pages must not embed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relcurate.models.index import l2_normalise
from relcurate.models.registry import get_model_version
from relcurate.models.workspace_scoring import load_vectors
from relcurate.workspace import Workspace


class SpaceUnavailable(LookupError):
    pass


@dataclass
class PairedSpaces:
    ids: np.ndarray  # int64, images both models embedded
    relational: np.ndarray  # unit vectors, row-aligned with ids
    attribute: np.ndarray
    relational_label: str
    attribute_label: str


def paired_spaces(ws: Workspace, relational: str, attribute: str) -> PairedSpaces:
    vecs = {}
    labels = {}
    for role, name in (("relational", relational), ("attribute", attribute)):
        mv = get_model_version(ws, name)
        labels[role] = f"{mv.name}:{mv.version}"
        try:
            vecs[role] = load_vectors(ws, mv)
        except (ValueError, FileNotFoundError):
            raise SpaceUnavailable(f"{labels[role]} has no finished embedding run; run "
                                   f"`relcurate models embed {labels[role]}` first") from None
    (ri, rv), (ai, av) = vecs["relational"], vecs["attribute"]
    common = np.intersect1d(ri, ai)
    if len(common) < 2:
        raise SpaceUnavailable("fewer than two images are embedded by both models")
    r_row = {int(i): k for k, i in enumerate(ri)}
    a_row = {int(i): k for k, i in enumerate(ai)}
    return PairedSpaces(common, l2_normalise(rv[[r_row[int(i)] for i in common]]),
                        l2_normalise(av[[a_row[int(i)] for i in common]]), labels["relational"], labels["attribute"])

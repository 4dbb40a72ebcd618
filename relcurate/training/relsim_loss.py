"""relsim's contrastive objective: image embeddings against frozen caption embeddings.

Fixes two defects of the reference (`relsim/train_relsim.py`): its temperature is a fixed 0.07
where the paper learns it, and its labels are `arange(B)`, so two images with the *same* anonymous
caption in one batch (common: every member of a seed group shares its caption) are pushed apart as
negatives. Here every caption equal to the image's own is a positive (multi-positive InfoNCE: the
loss is -log of the softmax mass on all positives), and the temperature is `exp(-logit_scale)`
with `logit_scale` a learnable log-parameter initialised to log(1/0.07) and clamped (CLIP's 100
cap) so it cannot collapse. `symmetric=True` adds the text->image direction.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

INIT_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = math.log(100.0)  # temperature >= 0.01
MIN_LOGIT_SCALE = 0.0  # temperature <= 1


def positives_mask(caption_ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """(B, B) bool: [i, j] is True when row j carries the same caption as row i."""
    ids = torch.as_tensor(caption_ids)
    return ids.unsqueeze(0) == ids.unsqueeze(1)


def multi_positive_nll(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(sum of softmax over the positive columns)."""
    log_all = torch.logsumexp(logits, dim=-1)
    log_pos = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=-1)
    return (log_all - log_pos).mean()


class RelsimContrastiveLoss(nn.Module):
    def __init__(self, temperature: float = INIT_TEMPERATURE, *, learnable: bool = True, symmetric: bool = False,
                 min_temperature: float = math.exp(-MAX_LOGIT_SCALE), max_temperature: float = 1.0) -> None:
        super().__init__()
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        self.logit_scale = nn.Parameter(init, requires_grad=learnable)
        self.symmetric = symmetric
        self.max_scale = math.log(1.0 / min_temperature)
        self.min_scale = math.log(1.0 / max_temperature)

    @property
    def temperature(self) -> float:
        return float(torch.exp(-self.clamped_scale()).detach())

    def clamped_scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(self.min_scale, self.max_scale)

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor, caption_ids) -> dict[str, torch.Tensor]:
        """Both embeddings L2-normalised, row i of each belonging together; `caption_ids[i]` names
        row i's caption (equal ids = identical captions). Returns loss and in-batch accuracy
        (the top-scoring caption is one of the image's positives)."""
        pos = positives_mask(caption_ids).to(image_emb.device)
        logits = image_emb.float() @ text_emb.float().T * self.clamped_scale().exp()
        loss = multi_positive_nll(logits, pos)
        if self.symmetric:
            loss = (loss + multi_positive_nll(logits.T, pos.T)) / 2
        with torch.no_grad():
            acc = pos.gather(1, logits.argmax(-1, keepdim=True)).float().mean()
        return {"loss": loss, "accuracy": acc}


def reference_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float = INIT_TEMPERATURE) -> torch.Tensor:
    """The reference objective (fixed temperature, arange labels, image->text only): for comparison."""
    logits = image_emb @ text_emb.T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))

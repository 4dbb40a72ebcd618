"""Run the last decoder layer of Qwen2.5-VL at the `<|query|>` position only (relsim's fast path).

relsim reads one row of the last layer: its output at the final position (the `<|query|>` token).
Under causal attention that row depends on every position's keys and values of the last layer, but
on nothing else the last layer computes at the other positions. So the last layer here computes K/V
(input norm, k_proj, v_proj, RoPE) for all positions and everything else — q_proj, attention,
o_proj, the MLP, and then the model's final norm — for the last row alone; the text model returns a
(B, 1, hidden) `last_hidden_state`. The values equal the full forward's last row (up to float
rounding); for the 7B that skips ~1/28 of the decoder, for a 2-layer benchmark model about half.

Why a class swap of the one layer instance rather than a wrapper module or a copy of the text
model's loop: the layer keeps its submodules and parameter names (state-dict keys, peft's injected
LoRA layers and relsim / reference checkpoints are untouched), the model's own forward still does
the multimodal merge, M-RoPE positions and masks, and the subclass inherits
`GradientCheckpointingLayer`'s checkpoint wrapper, so gradient checkpointing recomputes this same
query-only forward. Anything this path does not handle (a KV cache, packed sequences, a flex-attention
block mask) falls back to the full layer and keeps its last row.
"""
from __future__ import annotations

import types

import torch
from torch import nn
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

_UNSUPPORTED = object()


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # the formula of qwen.apply_rotary_pos_emb, for one tensor at a time (q and k get different rows)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + qwen.rotate_half(x) * sin


def _last_row_mask(mask):
    """The attention mask of the last query row, or _UNSUPPORTED."""
    if mask is None:  # no padding: the last row sees every position
        return None
    if isinstance(mask, torch.Tensor) and mask.ndim == 4:  # eager / sdpa: (B, 1, L, L)
        return mask[:, :, -1:, :]
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:  # flash attention: (B, L) padding mask
        return mask
    return _UNSUPPORTED


class QueryOnlyQwen2_5_VLDecoderLayer(qwen.Qwen2_5_VLDecoderLayer):
    """The last decoder layer, computed for the final position only (see the module docstring)."""

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, position_embeddings=None, **kwargs):
        mask = _last_row_mask(attention_mask)
        if mask is _UNSUPPORTED or past_key_values is not None or position_ids is not None:
            full = qwen.Qwen2_5_VLDecoderLayer.forward(
                self, hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                past_key_values=past_key_values, use_cache=use_cache, position_embeddings=position_embeddings,
                **kwargs)  # fmt: skip
            return full[:, -1:]
        attn = self.self_attn
        b, n, _ = hidden_states.shape
        x = self.input_layernorm(hidden_states)
        q = attn.q_proj(x[:, -1:]).view(b, 1, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
        cos, sin = position_embeddings
        q, k = _rope(q, cos[:, -1:], sin[:, -1:]), _rope(k, cos, sin)
        interface = qwen.ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation,
                                                               qwen.eager_attention_forward)
        out, _ = interface(attn, q, k, v, mask, dropout=0.0 if not attn.training else attn.attention_dropout,
                           scaling=attn.scaling, sliding_window=attn.sliding_window, position_ids=None, **kwargs)
        h = hidden_states[:, -1:] + attn.o_proj(out.reshape(b, 1, -1).contiguous())
        return h + self.mlp(self.post_attention_layernorm(h))


def set_query_only_last_layer(text_model: nn.Module, enabled: bool) -> bool:
    """Switch the fast path on or off on a Qwen2.5-VL text model; True when it is now on.

    Other layer classes (another model family) are left alone: the caller then runs the full model,
    which gives the same embedding, only slower.
    """
    layer = text_model.layers[-1]
    full, fast = qwen.Qwen2_5_VLDecoderLayer, QueryOnlyQwen2_5_VLDecoderLayer
    if type(layer) not in (full, fast):
        return False
    layer.__class__ = fast if enabled else full
    if hasattr(layer, "_old_forward"):  # an accelerate hook (device_map) bound the old class's forward
        layer._old_forward = types.MethodType(layer.__class__.forward, layer)
    return enabled

"""``gpt-tiny``: a small causal transformer for the language-model workload (byte-level ``pysrc``).

Pre-norm GPT blocks (LayerNorm, causal self-attention through ``F.scaled_dot_product_attention``,
GELU MLP) with learned position embeddings, a few hundred thousand parameters at the defaults,
so it trains in a minute or two on a CPU. Inputs are token ids ``(B, T)`` with ``T`` at most the
context it was built for; outputs are next-token logits ``(B, T, V)``, the shape the token-level
cross-entropy in `landscape.losses` takes. No dropout, so train and eval mode compute the same
function and the Hessian at a checkpoint is that of the loss it was trained on.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LandscapeError
from .registry import register_model


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token ids ``(B, T)`` -> next-token logits ``(B, T, V)``."""

    def __init__(self, vocab_size: int, context: int, width: int, depth: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        if width % heads:
            raise LandscapeError(f"width {width} must be a multiple of heads {heads}")
        self.context = context
        self.vocab_size = vocab_size
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        for name, p in self.named_parameters():  # GPT-2's init: N(0, 0.02), residual projections scaled by depth
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.is_floating_point():
            raise LandscapeError(f"{type(self).__name__} takes token ids of shape (batch, time), got a "
                                 f"{str(idx.dtype).removeprefix('torch.')} tensor of shape {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.context:
            raise LandscapeError(f"sequence of {t} tokens is longer than the context of {self.context} this model "
                                 f"was built for; build it with input_shape=({t},)")
        pos = torch.arange(t, device=idx.device)
        x = self.token(idx) + self.position(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


@register_model(name="gpt-tiny")
def gpt_tiny(input_shape: Sequence[int] = (64,), num_classes: int = 128, width: int = 96, depth: int = 2,
             heads: int = 4, mlp_ratio: int = 4) -> GPT:
    """A tiny causal transformer: ``input_shape=(context,)``, ``num_classes`` is the vocabulary size."""
    return GPT(num_classes, int(input_shape[0]), width, depth, heads, mlp_ratio)

"""Attention over a padded source sequence, for the encoder-decoder of `seq2seq.py`.

Three score functions, one masked-softmax readout:

- `additive`: v^T tanh(W_q q + W_k k), Bahdanau, Cho & Bengio (2015), "Neural Machine Translation by Jointly
  Learning to Align and Translate";
- `dot`: q^T k, Luong, Pham & Manning (2015), "Effective Approaches to Attention-based Neural Machine
  Translation"; needs query and key of the same size;
- `general`: q^T W k, Luong et al. (2015).

The softmax runs over the unpadded source positions only, so a sequence's weights sum to 1 over its own length
and are exactly 0 on padding: the context never mixes in the (zero) encoder outputs at padded positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ATTENTIONS = ("none", "additive", "dot", "general")


class Attention(nn.Module):
    """Scores every source position against a query and returns the softmax-weighted average of the keys."""

    def prepare(self, keys: Tensor) -> Tensor:
        """The query-independent part of the scores, computed once per source batch and reused at every step."""
        return keys

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        """Unnormalised scores (B, S) of query (B, Q) against the prepared keys (B, S, *)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None, prepared: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """query (B, Q), keys (B, S, K), mask (B, S) True on real tokens -> (context (B, K), weights (B, S))."""
        scores = self.score(query, self.prepare(keys) if prepared is None else prepared)  # (B, S)
        if mask is not None:
            # exp(-inf) is exactly 0, so padding gets exactly zero weight; every source has length >= 1.
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        return _weighted_sum(weights, keys), weights


class AdditiveAttention(Attention):
    """Bahdanau et al. (2015): score = v^T tanh(W_q q + W_k k), an MLP with attn_size hidden units."""

    def __init__(self, query_size: int, key_size: int, attn_size: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_size, attn_size, bias=False)
        self.key_proj = nn.Linear(key_size, attn_size, bias=False)
        self.v = nn.Linear(attn_size, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        """2 W_k k for all positions: (B, S, K) -> (B, S, A), doubled for `score`'s tanh-through-sigmoid."""
        return 2 * self.key_proj(keys)

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        """v^T tanh(W_q q + W_k k): (B, Q), (B, S, A) -> (B, S).

        Computed as 2 v^T sigmoid(2 u) - sum(v), the same function (tanh u = 2 sigmoid(2u) - 1): this (B, S, A)
        activation is the largest elementwise op of a decoder step, and torch's CPU tanh takes ~3.5x as long as
        its sigmoid (torch 2.13, AVX2, one thread: 500 vs 145 us at 32 x 32 x 128)."""
        doubled = torch.add(prepared, self.query_proj(query).unsqueeze(1), alpha=2)  # 2u
        return 2 * self.v(torch.sigmoid(doubled)).squeeze(-1) - self.v.weight.sum()


class DotAttention(Attention):
    """Luong et al. (2015) `dot`: score = q^T k, parameter-free."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        if query_size != key_size:
            raise ValueError(
                f"attention='dot' needs query_size == key_size, got {query_size} and {key_size} "
                "(a bidirectional encoder doubles the key size); use attention='general' or 'additive'"
            )

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        """q^T k: (B, Q), (B, S, Q) -> (B, S)."""
        return _dot_scores(query, prepared)


class GeneralAttention(Attention):
    """Luong et al. (2015) `general`: score = q^T W k, a dot product after mapping the keys to the query size."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_size, query_size, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        """W k for all positions: (B, S, K) -> (B, S, Q)."""
        return self.key_proj(keys)

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        """q^T (W k): (B, Q), (B, S, Q) -> (B, S)."""
        return _dot_scores(query, prepared)


# The two batched products of one query per sequence are a multiply and a sum, not `torch.bmm`: bmm runs B tiny
# matrix-vector products, and with their backward that took ~1.0 ms against ~0.55 ms per decoder step (B=32, S=32,
# K=128, one CPU thread, torch 2.13), a tenth of an attention model's training step.
def _dot_scores(query: Tensor, keys: Tensor) -> Tensor:
    return (keys * query.unsqueeze(1)).sum(-1)  # (B, S, Q) . (B, 1, Q) -> (B, S)


def _weighted_sum(weights: Tensor, keys: Tensor) -> Tensor:
    return (weights.unsqueeze(-1) * keys).sum(1)  # (B, S, 1) * (B, S, K) -> (B, K)


def build_attention(kind: str, query_size: int, key_size: int, attn_size: int) -> Attention | None:
    """The attention module named by kind (one of ATTENTIONS); None for "none". attn_size is used by additive."""
    if kind not in ATTENTIONS:
        raise ValueError(f"attention: unknown kind {kind!r}; allowed: {', '.join(ATTENTIONS)}")
    for name, size in (("query_size", query_size), ("key_size", key_size), ("attn_size", attn_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"attention: {name} must be a positive int, got {size!r}")
    if kind == "none":
        return None
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, attn_size)
    if kind == "dot":
        return DotAttention(query_size, key_size)
    return GeneralAttention(query_size, key_size)

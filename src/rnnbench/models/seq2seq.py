"""Recurrent encoder-decoder, with or without attention: the fixed-size-context bottleneck experiment.

With `attention="none"` this is Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning with Neural
Networks": the decoder sees the source only through the encoder's final state, a fixed-size vector whatever the
source length. That bottleneck is what the benchmark measures, so the model gives it no other view of the source.

With attention, the decoder follows Luong, Pham & Manning (2015): at step t the decoder state h_t queries the
encoder outputs (any score of `attention.py`, including Bahdanau's additive one) for a context c_t, the
attentional state h~_t = tanh(W_c [h_t; c_t]) feeds the output layer, and h~_{t-1} is concatenated to the next
step's input embedding (input feeding), so the decoder knows what it attended to before.

The encoder is a `Recurrent` over any cell, uni- or bidirectional. The decoder is a unidirectional `Recurrent`
of the same cell and size, called one step at a time (`Recurrent.step`: input feeding, scheduled sampling and
greedy decoding need the previous step's output) or, teacher-forced without attention, over the whole target at
once. It starts from the encoder's final state: as is for a unidirectional encoder, through a learned
bridge tanh(W [h_fwd; h_bwd]) per layer (and per state, h and c) for a bidirectional one.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from rnnbench.models.attention import Attention, build_attention
from rnnbench.models.recurrent import Recurrent, RecurrentState

# What the attention needs from the encoder at every decoder step: memory (B, S, K), its prepared keys, mask (B, S).
Source = tuple[Tensor, Tensor, Tensor]


class Bridge(nn.Module):
    """Maps a bidirectional encoder's final state to a unidirectional decoder's: tanh(W [h_fwd; h_bwd]) per layer."""

    def __init__(self, hidden_size: int, num_states: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(2 * hidden_size, hidden_size) for _ in range(num_states))

    def forward(self, state: RecurrentState) -> RecurrentState:
        """h_n (or (h_n, c_n)) of shape (L*2, B, H) -> (L, B, H), one projection per state."""
        parts = state if isinstance(state, tuple) else (state,)
        out = []
        for proj, s in zip(self.proj, parts, strict=True):
            layers2, batch, hidden = s.shape
            s = s.view(layers2 // 2, 2, batch, hidden).transpose(1, 2).reshape(layers2 // 2, batch, 2 * hidden)
            out.append(torch.tanh(proj(s)))  # (L, B, 2H) -> (L, B, H)
        return tuple(out) if isinstance(state, tuple) else out[0]


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_fraction(name: str, value: object, high_open: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a float in [0, {'1)' if high_open else '1]'}, got {value!r}")


class Seq2Seq(nn.Module):
    """Recurrent encoder-decoder (Sutskever et al. 2014), optionally with Luong-style attention (Luong et al. 2015)."""

    model_kind: ClassVar[str] = "seq2seq"  # only tasks with SequenceTask.model_kind == "seq2seq" accept it

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embed_dim: int = 64,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        encoder_bidirectional: bool = False,
        attention: str = "none",
        dropout: float = 0.0,
        teacher_forcing: float = 1.0,
        impl: str = "auto",
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> None:
        super().__init__()
        # Both vocabularies hold pad, bos and eos (the source only needs pad, but one id scheme serves both).
        _check_int("src_vocab", src_vocab, 4)
        _check_int("tgt_vocab", tgt_vocab, 4)
        for name, value in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            _check_int(name, value, 0)
            if value >= min(src_vocab, tgt_vocab):
                raise ValueError(f"{name}={value} must be < src_vocab and tgt_vocab ({src_vocab}, {tgt_vocab})")
        if len({pad_id, bos_id, eos_id}) != 3:
            raise ValueError(f"pad_id, bos_id, eos_id must be distinct, got {pad_id}, {bos_id}, {eos_id}")
        _check_int("embed_dim", embed_dim, 1)
        _check_int("hidden_size", hidden_size, 1)
        _check_int("num_layers", num_layers, 1)
        _check_fraction("dropout", dropout, high_open=True)
        _check_fraction("teacher_forcing", teacher_forcing, high_open=False)
        self.tgt_vocab = tgt_vocab
        self.output_size = tgt_vocab  # features per step handed to a task's head: the logits over the target vocab
        self.hidden_size = hidden_size
        self.teacher_forcing = float(teacher_forcing)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

        self.src_embed = nn.Embedding(src_vocab, embed_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.encoder = Recurrent(
            cell, embed_dim, hidden_size, num_layers, bidirectional=encoder_bidirectional, dropout=dropout, impl=impl
        )
        key_size = self.encoder.num_directions * hidden_size
        self.attention: Attention | None = build_attention(attention, hidden_size, key_size, hidden_size)
        feed_size = 0 if self.attention is None else hidden_size
        self.decoder = Recurrent(cell, embed_dim + feed_size, hidden_size, num_layers, dropout=dropout, impl=impl)
        num_states = 2 if self.encoder.spec.has_cell else 1
        self.bridge = Bridge(hidden_size, num_states) if encoder_bidirectional else nn.Identity()
        self.combine = None if self.attention is None else nn.Linear(hidden_size + key_size, hidden_size)
        self.out = nn.Linear(hidden_size, tgt_vocab)

    def _encode(self, src: Tensor, src_lengths: Tensor) -> tuple[RecurrentState, Tensor | None, Source | None]:
        """Encode the source; returns the decoder's initial state, input-feed vector and attention source."""
        memory, final = self.encoder(self.drop(self.src_embed(src)), lengths=src_lengths)  # (B, S, dirs*H)
        state = self.bridge(final)
        if self.attention is None:
            return state, None, None
        lengths = torch.as_tensor(src_lengths, device=src.device)
        mask = torch.arange(src.shape[1], device=src.device) < lengths.unsqueeze(1)  # (B, S)
        feed = memory.new_zeros(src.shape[0], self.hidden_size)
        return state, feed, (memory, self.attention.prepare(memory), mask)

    def _decode_step(
        self, tokens: Tensor, state: RecurrentState, feed: Tensor | None, source: Source | None
    ) -> tuple[Tensor, RecurrentState, Tensor | None, Tensor | None]:
        """One decoder step: tokens (B,) -> (logits (B, V), state, next input feed (B, H), weights (B, S))."""
        x = self.drop(self.tgt_embed(tokens))  # (B, E)
        if source is not None:
            x = torch.cat([x, feed], dim=-1)  # (B, E+H)
        h, state = self.decoder.step(x, state)  # (B, H)
        weights = None
        if source is not None:
            memory, prepared, mask = source
            context, weights = self.attention(h, memory, mask, prepared)  # (B, K), (B, S)
            h = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))  # h~_t, also the next step's feed
        return self.out(self.drop(h)), state, h, weights

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """src (B, S), src_lengths (B,), tgt_in (B, T) = [bos, y_1 .. y_{T-1}] -> (logits (B, T, V), attn (B, T, S)).

        In training mode each step after the first is fed the ground-truth token with probability
        `teacher_forcing`, else the model's own greedy prediction (scheduled sampling, Bengio et al. 2015, drawn
        per sequence and step from torch's RNG). In eval mode it is always teacher-forced, for the loss.
        """
        state, feed, source = self._encode(src, src_lengths)
        use_truth = None
        if self.training and self.teacher_forcing < 1.0:
            use_truth = torch.rand(tgt_in.shape, device=tgt_in.device) < self.teacher_forcing  # (B, T)
        if source is None and use_truth is None:
            # Nothing feeds back from one step to the next (no input feeding, no sampled tokens), so the decoder
            # reads the whole teacher-forced target in one call: the step loop's computation, in the fused kernel.
            out, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)), state)
            return self.out(self.drop(out)), None
        logits, attn = [], []
        for t in range(tgt_in.shape[1]):
            tokens = tgt_in[:, t]
            if use_truth is not None and t > 0:
                tokens = torch.where(use_truth[:, t], tokens, logits[-1].argmax(-1))
            step_logits, state, feed, weights = self._decode_step(tokens, state, feed, source)
            logits.append(step_logits)
            attn.append(weights)
        return torch.stack(logits, 1), (None if source is None else torch.stack(attn, 1))

    @torch.no_grad()
    def generate(self, src: Tensor, src_lengths: Tensor, max_len: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Greedy decoding from bos -> (tokens (B, <=max_len), lengths (B,) incl. eos, attn (B, <=max_len, S)).

        A sequence stops at its first eos (kept in the output, pad_id after it); the loop stops when all have.
        Uses the module's current mode, so call `eval()` first to switch dropout off.
        """
        _check_int("max_len", max_len, 1)
        state, feed, source = self._encode(src, src_lengths)
        tokens = src.new_full((src.shape[0],), self.bos_id)
        done = torch.zeros_like(tokens, dtype=torch.bool)
        lengths = torch.zeros_like(tokens)
        out, attn = [], []
        for _ in range(max_len):
            step_logits, state, feed, weights = self._decode_step(tokens, state, feed, source)
            tokens = step_logits.argmax(-1).masked_fill(done, self.pad_id)
            lengths += ~done
            out.append(tokens)
            if weights is not None:
                attn.append(weights.masked_fill(done.unsqueeze(1), 0.0))
            done |= tokens == self.eos_id
            if done.all():
                break
        return torch.stack(out, 1), lengths, (torch.stack(attn, 1) if attn else None)

"""Seq2Seq and attention: learning on a copy task, greedy decoding, masking, bridge shapes, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnbench.models.attention import build_attention
from rnnbench.models.seq2seq import Seq2Seq

PAD, BOS, EOS = 0, 1, 2


def batch(vocab: int = 8, size: int = 4, steps: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random right-padded sources of mixed lengths (the first one full length) and their lengths."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (size, steps), generator=gen)
    lengths = torch.randint(1, steps + 1, (size,), generator=gen)
    lengths[0] = steps
    src[torch.arange(steps) >= lengths.unsqueeze(1)] = PAD
    return src, lengths


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_copy_task_loss_drops(attention: str) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(8, 8, embed_dim=16, hidden_size=32, attention=attention)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(60):
        src = torch.randint(3, 8, (32, 5), generator=gen)
        tgt_in = torch.cat([torch.full((32, 1), BOS), src], 1)  # (B, 6): bos, x_1..x_5
        tgt_out = torch.cat([src, torch.full((32, 1), EOS)], 1)  # (B, 6): x_1..x_5, eos
        logits, _ = model(src, torch.full((32,), 5), tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def successor_model() -> Seq2Seq:
    """A hand-wired rnn encoder-decoder that emits the successors of the source's last token, then eos.

    Encoder: h = tanh(5 onehot(x_t)), so its final state is the one-hot of the last unpadded token. Decoder:
    h_t = tanh(3 P h_{t-1}) with P the shift 3->4->5->6->7->eos, read out by the identity.
    """
    model = Seq2Seq(8, 8, embed_dim=8, cell="rnn", hidden_size=8, attention="none").eval()
    eye = torch.eye(8)
    shift = torch.zeros(8, 8)
    for token, successor in ((3, 4), (4, 5), (5, 6), (6, 7), (7, EOS)):
        shift[successor, token] = 3.0
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.src_embed.weight.copy_(5 * eye)
        model.encoder.weight_ih_l0.copy_(eye)
        model.decoder.weight_hh_l0.copy_(shift)
        model.out.weight.copy_(eye)
    return model


def test_greedy_decoding_stops_at_eos_and_pads_after() -> None:
    model = successor_model()
    src = torch.tensor([[5, 3, 0], [4, 5, 3], [7, 0, 0]])
    lengths = torch.tensor([1, 2, 1])  # last unpadded tokens 5, 5, 7: what follows a length-1 source is ignored
    tokens, out_lengths, attn = model.generate(src, lengths, max_len=10)
    assert attn is None
    assert tokens.tolist() == [[6, 7, EOS], [6, 7, EOS], [EOS, PAD, PAD]]  # loop ends once all hit eos
    assert out_lengths.tolist() == [3, 3, 1]

    src, lengths = torch.tensor([[3, 7], [6, 5]]), torch.tensor([1, 1])  # last tokens 3 and 6
    tokens, out_lengths, _ = model.generate(src, lengths, max_len=10)
    assert tokens.tolist() == [[4, 5, 6, 7, EOS], [7, EOS, PAD, PAD, PAD]]
    assert out_lengths.tolist() == [5, 2]

    tokens, out_lengths, _ = model.generate(src, lengths, max_len=3)  # cut before eos: length is max_len
    assert tokens.tolist() == [[4, 5, 6], [7, EOS, PAD]]
    assert out_lengths.tolist() == [3, 2]


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_weights_are_a_distribution_over_unpadded_source(kind: str) -> None:
    torch.manual_seed(0)
    src, lengths = batch()
    mask = torch.arange(src.shape[1]) < lengths.unsqueeze(1)  # (B, S)

    attention = build_attention(kind, 16, 16, 8)
    keys = torch.randn(4, 6, 16)
    context, weights = attention(torch.randn(4, 16), keys, mask)
    assert context.shape == (4, 16) and weights.shape == (4, 6)
    assert torch.allclose(weights.sum(-1), torch.ones(4))
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    assert torch.allclose(context, (weights.unsqueeze(-1) * keys).sum(1), atol=1e-6)

    model = Seq2Seq(8, 9, embed_dim=8, hidden_size=16, attention=kind)
    _, attn = model(src, lengths, torch.randint(3, 9, (4, 5)))
    assert attn.shape == (4, 5, 6)
    assert torch.allclose(attn.sum(-1), torch.ones(4, 5))
    assert (attn.masked_select(~mask.unsqueeze(1)) == 0).all()


def test_attention_scores_are_the_textbook_formulas() -> None:
    """Additive: v^T tanh(W_q q + W_k k) (computed through sigmoid); dot: q^T k; general: q^T W k."""
    torch.manual_seed(0)
    query, keys = torch.randn(4, 16), torch.randn(4, 6, 16)
    add = build_attention("additive", 16, 16, 8)
    want = add.v(torch.tanh(add.query_proj(query).unsqueeze(1) + add.key_proj(keys))).squeeze(-1)
    torch.testing.assert_close(add.score(query, add.prepare(keys)), want, atol=1e-5, rtol=1e-5)
    dot = build_attention("dot", 16, 16, 8)
    torch.testing.assert_close(dot.score(query, dot.prepare(keys)), torch.einsum("bq,bsq->bs", query, keys))
    gen = build_attention("general", 16, 16, 8)
    want = torch.einsum("bq,bsq->bs", query, gen.key_proj(keys))
    torch.testing.assert_close(gen.score(query, gen.prepare(keys)), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ["none", "general"])
def test_bidirectional_encoder_bridges_to_decoder(cell: str, attention: str) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(
        8, 9, embed_dim=8, cell=cell, hidden_size=16, num_layers=2, encoder_bidirectional=True, attention=attention
    )
    src, lengths = batch()
    memory, final = model.encoder(model.src_embed(src), lengths=lengths)
    assert memory.shape == (4, 6, 32)
    for state in final if cell == "lstm" else (final,):
        assert state.shape == (4, 4, 16)  # (layers * 2 directions, B, H)
    for state in model.bridge(final) if cell == "lstm" else (model.bridge(final),):
        assert state.shape == (2, 4, 16)  # (layers, B, H): what the unidirectional decoder starts from

    logits, attn = model(src, lengths, torch.randint(3, 9, (4, 5)))
    assert logits.shape == (4, 5, 9)
    assert (attn is None) == (attention == "none")
    logits.sum().backward()
    assert all(p.grad is not None for p in model.bridge.parameters())
    tokens, out_lengths, _ = model.eval().generate(src, lengths, max_len=7)
    assert tokens.shape[0] == 4 and tokens.shape[1] <= 7 and out_lengths.shape == (4,)


@pytest.mark.parametrize("cell", ["rnn", "peephole_lstm"])
@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_forward_and_generate_shapes(cell: str, attention: str) -> None:
    model = Seq2Seq(8, 11, embed_dim=8, cell=cell, hidden_size=16, attention=attention).eval()
    src, lengths = batch()
    logits, attn = model(src, lengths, torch.randint(3, 11, (4, 3)))
    assert logits.shape == (4, 3, 11)
    assert attn is None if attention == "none" else attn.shape == (4, 3, 6)
    tokens, out_lengths, gen_attn = model.generate(src, lengths, max_len=5)
    assert tokens.dtype == torch.long and tokens.shape[0] == 4 and 1 <= tokens.shape[1] <= 5
    assert (tokens[torch.arange(tokens.shape[1]) >= out_lengths.unsqueeze(1)] == PAD).all()
    assert gen_attn is None if attention == "none" else gen_attn.shape == (*tokens.shape, 6)


def test_teacher_forcing_ratio_zero_feeds_own_predictions_in_training_only() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(8, 8, embed_dim=8, hidden_size=16, attention="additive", teacher_forcing=0.0)
    src, lengths = batch()
    tgt_a = torch.randint(3, 8, (4, 5))
    tgt_b = tgt_a.clone()
    tgt_b[:, 1:] = torch.randint(3, 8, (4, 4))
    assert torch.equal(model(src, lengths, tgt_a)[0], model(src, lengths, tgt_b)[0])  # ground truth past bos unused
    model.eval()
    assert not torch.allclose(model(src, lengths, tgt_a)[0], model(src, lengths, tgt_b)[0])  # eval: teacher-forced


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"teacher_forcing": 1.5}, "teacher_forcing"),
        ({"teacher_forcing": -0.1}, "teacher_forcing"),
        ({"attention": "luong"}, "attention"),
        ({"src_vocab": 3}, "src_vocab"),
        ({"tgt_vocab": 2}, "tgt_vocab"),
        ({"cell": "transformer"}, "cell"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"num_layers": 0}, "num_layers"),
        ({"impl": "cuda"}, "impl"),
        ({"eos_id": 9}, "eos_id"),
        ({"bos_id": 0}, "distinct"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"src_vocab": 8, "tgt_vocab": 8, **kwargs}
    with pytest.raises(ValueError, match=name):
        Seq2Seq(**args)


def test_attention_factory_rejects_unknown_kind_and_dot_size_mismatch() -> None:
    with pytest.raises(ValueError, match=r"attention.*none, additive, dot, general"):
        build_attention("bahdanau", 8, 8, 8)
    assert build_attention("none", 8, 8, 8) is None
    with pytest.raises(ValueError, match="dot"):
        build_attention("dot", 8, 16, 8)
    with pytest.raises(ValueError, match="dot"):
        Seq2Seq(8, 8, hidden_size=16, encoder_bidirectional=True, attention="dot")  # keys are 2H, the query H

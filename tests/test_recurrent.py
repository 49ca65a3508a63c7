"""`Recurrent`: shapes, equivalence with torch.nn and between impls, cell semantics, gradients and arguments."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnbench.models.recurrent import Recurrent

TORCH_NN: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
ALL_CELLS = ["rnn", "lstm", "gru", "peephole_lstm"]
CELL_IMPLS = [(c, i) for c in ALL_CELLS for i in ("custom", "fused") if not (c == "peephole_lstm" and i == "fused")]
TOL = {"atol": 1e-5, "rtol": 1e-5}


def states(state: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, ...]:
    """A final state as a tuple: (h,) or (h, c)."""
    return state if isinstance(state, tuple) else (state,)


def assert_close_all(got: tuple[Tensor, ...], want: tuple[Tensor, ...]) -> None:
    """Element-wise closeness (1e-5) of matching tensor tuples."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def twin(cell: str, impl: str, **kwargs: object) -> tuple[Recurrent, Recurrent]:
    """A Recurrent under `impl` and a custom-impl copy with the same weights."""
    model = Recurrent(cell, impl=impl, **kwargs)
    other = Recurrent(cell, impl="custom", **kwargs)
    other.load_state_dict(model.state_dict())
    return model, other


# -- shapes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cell", "impl"), CELL_IMPLS)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("bidi", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_shapes_and_last_step_consistency(cell: str, impl: str, layers: int, bidi: bool, batch_first: bool) -> None:
    """Output (B,T,D*H) / (T,B,D*H), states (L*D,B,H); output ends equal the last layer's final h."""
    torch.manual_seed(0)
    b, t, i, h = 2, 3, 4, 5
    dirs = 2 if bidi else 1
    model = Recurrent(cell, i, h, num_layers=layers, bidirectional=bidi, batch_first=batch_first, impl=impl)
    x = torch.randn(b, t, i) if batch_first else torch.randn(t, b, i)
    out, state = model(x)
    assert out.shape == ((b, t, dirs * h) if batch_first else (t, b, dirs * h))
    expected_states = 2 if cell in ("lstm", "peephole_lstm") else 1
    assert len(states(state)) == expected_states
    assert all(s.shape == (layers * dirs, b, h) for s in states(state))
    h_n = states(state)[0]
    seq = out if batch_first else out.transpose(0, 1)  # (B, T, D*H)
    fwd_last = h_n[-dirs]  # last layer, forward direction
    torch.testing.assert_close(seq[:, -1, :h], fwd_last, **TOL)
    if bidi:
        torch.testing.assert_close(seq[:, 0, h:], h_n[-1], **TOL)


# -- equivalence with torch.nn ---------------------------------------------------------------------------------
EQUIV_CASES = {
    "1layer": {"layers": 1, "bidi": False, "mode": "full", "init": False},
    "3layer_bidi": {"layers": 3, "bidi": True, "mode": "full", "init": True},
    "lengths_bidi": {"layers": 2, "bidi": True, "mode": "lengths", "init": True},
    "packed_bidi": {"layers": 2, "bidi": True, "mode": "packed", "init": False},
    "packed_uni_init": {"layers": 2, "bidi": False, "mode": "packed", "init": True},
}


@pytest.mark.parametrize("case", list(EQUIV_CASES))
@pytest.mark.parametrize("impl", ["custom", "fused"])
@pytest.mark.parametrize(("cell", "nonlin"), [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")])
def test_matches_torch_nn(cell: str, nonlin: str, impl: str, case: str) -> None:
    """Outputs and final states equal torch.nn's (on pack_padded_sequence for variable lengths) to 1e-5."""
    cfg = EQUIV_CASES[case]
    torch.manual_seed(1)
    b, t, i, h = 4, 6, 3, 5
    kwargs = {"nonlinearity": nonlin} if cell == "rnn" else {}
    model = Recurrent(cell, i, h, num_layers=cfg["layers"], bidirectional=cfg["bidi"], impl=impl, **kwargs)
    ref = TORCH_NN[cell](i, h, cfg["layers"], bidirectional=cfg["bidi"], batch_first=True, **kwargs)
    ref.load_state_dict(model.state_dict())
    x = torch.randn(b, t, i)
    lengths = torch.tensor([6, 2, 4, 1])
    state = None
    if cfg["init"]:
        shape = (cfg["layers"] * (2 if cfg["bidi"] else 1), b, h)
        state = (torch.randn(shape), torch.randn(shape)) if cell == "lstm" else torch.randn(shape)
    if cfg["mode"] == "full":
        out, final = model(x, state)
        ref_out, ref_final = ref(x, state)
    else:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        ref_packed, ref_final = ref(packed, state)
        ref_out, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=t)
        if cfg["mode"] == "lengths":
            out, final = model(x, state, lengths=lengths)
        else:
            got_packed, final = model(packed, state)
            assert isinstance(got_packed, PackedSequence)
            assert torch.equal(got_packed.batch_sizes, ref_packed.batch_sizes)
            assert torch.equal(got_packed.unsorted_indices, ref_packed.unsorted_indices)
            torch.testing.assert_close(got_packed.data, ref_packed.data, **TOL)
            out, _ = pad_packed_sequence(got_packed, batch_first=True, total_length=t)
        assert torch.all(out[1, 2:] == 0) and torch.all(out[3, 1:] == 0)
    assert_close_all((out, *states(final)), (ref_out, *states(ref_final)))


@pytest.mark.parametrize("impl", ["custom", "fused"])
def test_packed_sorted_input_with_tied_lengths(impl: str) -> None:
    """Regression: a PackedSequence packed with enforce_sorted=True and many tied lengths comes back in its order.

    The output used to be re-packed by re-sorting the lengths, which may order ties differently than the input;
    with 64 sequences of lengths 1-3 torch.sort does, and the output rows were permuted.
    """
    torch.manual_seed(2)
    model = Recurrent("gru", 3, 4, impl=impl)
    ref = nn.GRU(3, 4, batch_first=True)
    ref.load_state_dict(model.state_dict())
    lengths = torch.sort(torch.randint(1, 4, (64,)), descending=True).values
    packed = pack_padded_sequence(torch.randn(64, 3, 3), lengths, batch_first=True, enforce_sorted=True)
    out, h_n = model(packed)
    ref_out, ref_h = ref(packed)
    assert out.sorted_indices is None
    assert_close_all((out.data, h_n), (ref_out.data, ref_h))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_custom_equal_fused(cell: str) -> None:
    """Outputs, states and input/weight gradients agree between impls (bidirectional, 2 layers, lengths)."""
    torch.manual_seed(3)
    fused, custom = twin(cell, "fused", input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    x = torch.randn(3, 5, 3)
    lengths = torch.tensor([5, 2, 4])
    results, grads = [], []
    for model in (fused, custom):
        xi = x.clone().requires_grad_(True)
        out, final = model(xi, lengths=lengths)
        loss = (out**2).sum() + sum((s * torch.arange(s.numel()).view_as(s)).sum() for s in states(final))
        loss.backward()
        results.append((out.detach(), *(s.detach() for s in states(final))))
        grads.append((xi.grad, *(p.grad for p in model.parameters())))
    assert grads[0][0].abs().sum() > 0
    assert_close_all(results[1], results[0])
    assert_close_all(grads[1], grads[0])


# -- state_dict round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_dict_round_trip_custom_fused_torch(cell: str) -> None:
    """custom -> fused -> torch.nn -> custom: same keys everywhere and identical outputs."""
    torch.manual_seed(4)
    kwargs = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True}
    custom = Recurrent(cell, impl="custom", **kwargs)
    fused = Recurrent(cell, impl="fused", **kwargs)
    ref = TORCH_NN[cell](3, 4, 2, bidirectional=True, batch_first=True)
    fresh = Recurrent(cell, impl="custom", **kwargs)
    saved = custom.state_dict()
    assert list(saved) == list(ref.state_dict())
    fused.load_state_dict(saved)
    ref.load_state_dict(fused.state_dict())
    fresh.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 3)
    want_out, want_state = custom(x)
    for model in (fused, ref, fresh):
        out, state = model(x)
        assert_close_all((out, *states(state)), (want_out, *states(want_state)))


# -- peephole semantics ----------------------------------------------------------------------------------------
def test_peephole_with_zero_peepholes_equals_lstm() -> None:
    """Zeroed peephole vectors reduce peephole_lstm to lstm with the same other weights."""
    torch.manual_seed(5)
    kwargs = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True}
    lstm = Recurrent("lstm", **kwargs)
    peep = Recurrent("peephole_lstm", **kwargs)
    result = peep.load_state_dict(lstm.state_dict(), strict=False)
    assert sorted(result.missing_keys) == sorted(
        f"weight_p{g}_l{k}{s}" for g in "ifo" for k in range(2) for s in ("", "_reverse")
    )
    x, lengths = torch.randn(3, 5, 3), torch.tensor([5, 3, 1])
    with torch.no_grad():
        out_nonzero, _ = peep(x, lengths=lengths)
        for name, param in peep.named_parameters():
            if name.startswith("weight_p"):
                param.zero_()
    out_p, (h_p, c_p) = peep(x, lengths=lengths)
    out_l, (h_l, c_l) = lstm(x, lengths=lengths)
    assert_close_all((out_p, h_p, c_p), (out_l, h_l, c_l))
    assert (out_nonzero - out_l).abs().max() > 1e-3  # the peepholes do matter when non-zero


def test_peephole_one_step_by_hand() -> None:
    """H=1 one step: i and f see c_{t-1}, the output gate sees the new c_t (Gers & Schmidhuber 2000)."""
    model = Recurrent("peephole_lstm", 1, 1, impl="custom", forget_bias=None)
    w_ih, w_hh = [0.5, -0.4, 0.8, 0.3], [0.2, 0.6, -0.5, -0.7]
    b_ih, b_hh = [0.1, 0.2, -0.1, 0.05], [0.0, 0.1, 0.2, -0.3]
    p_i, p_f, p_o = -0.9, 1.1, 2.0
    with torch.no_grad():
        model.weight_ih_l0.copy_(torch.tensor(w_ih).view(4, 1))
        model.weight_hh_l0.copy_(torch.tensor(w_hh).view(4, 1))
        model.bias_ih_l0.copy_(torch.tensor(b_ih))
        model.bias_hh_l0.copy_(torch.tensor(b_hh))
        model.weight_pi_l0.fill_(p_i)
        model.weight_pf_l0.fill_(p_f)
        model.weight_po_l0.fill_(p_o)
    x, h0, c0 = 1.5, 0.3, -1.5

    def sigmoid(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-v))

    pre = [w_ih[k] * x + w_hh[k] * h0 + b_ih[k] + b_hh[k] for k in range(4)]
    i = sigmoid(pre[0] + p_i * c0)
    f = sigmoid(pre[1] + p_f * c0)
    c1 = f * c0 + i * math.tanh(pre[2])
    h1 = sigmoid(pre[3] + p_o * c1) * math.tanh(c1)
    h1_if_o_saw_old_c = sigmoid(pre[3] + p_o * c0) * math.tanh(c1)
    c1_if_if_saw_no_c = sigmoid(pre[1]) * c0 + sigmoid(pre[0]) * math.tanh(pre[2])

    out, (h_n, c_n) = model(torch.tensor([[[x]]]), (torch.tensor([[[h0]]]), torch.tensor([[[c0]]])))
    assert c_n.item() == pytest.approx(c1, abs=1e-6)
    assert h_n.item() == pytest.approx(h1, abs=1e-6)
    assert out.item() == pytest.approx(h1, abs=1e-6)
    assert abs(h1 - h1_if_o_saw_old_c) > 0.1  # the case discriminates the two output-gate variants
    assert abs(c1 - c1_if_if_saw_no_c) > 0.1  # ... and shows i/f read c_{t-1}


# -- gradcheck -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_custom_cells(cell: str, masked: bool) -> None:
    """Analytic gradients w.r.t. input, initial state and every weight match finite differences (float64)."""
    torch.manual_seed(6)
    bidi = masked
    model = Recurrent(cell, 2, 2, bidirectional=bidi, impl="custom").double()
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    dirs = 2 if bidi else 1
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(dirs, 3, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3]) if masked else None
    has_cell = cell in ("lstm", "peephole_lstm")

    def fn(x: Tensor, h0: Tensor, *weights: Tensor) -> tuple[Tensor, ...]:
        state = (h0, h0.tanh()) if has_cell else h0
        out, final = functional_call(model, dict(zip(names, weights, strict=True)), (x, state), {"lengths": lengths})
        return (out, *states(final))

    assert torch.autograd.gradcheck(fn, (x, h0, *params), eps=1e-6, atol=1e-5)


# -- forget-gate bias ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
@pytest.mark.parametrize(("forget_bias", "expected"), [((), 1.0), ((2.5,), 2.5), ((0.0,), 0.0)])
def test_forget_bias_lstm_family(cell: str, forget_bias: tuple[float, ...], expected: float) -> None:
    """bias_ih + bias_hh on the f chunk equals forget_bias (default 1.0) in every layer and direction."""
    h = 3
    kwargs = {"forget_bias": forget_bias[0]} if forget_bias else {}
    model = Recurrent(cell, 2, h, num_layers=2, bidirectional=True, **kwargs)
    for k, sfx in itertools.product(range(2), ("", "_reverse")):
        b_ih, b_hh = getattr(model, f"bias_ih_l{k}{sfx}"), getattr(model, f"bias_hh_l{k}{sfx}")
        effective = b_ih[h : 2 * h] + b_hh[h : 2 * h]
        assert torch.equal(effective, torch.full((h,), expected))
        assert b_ih[:h].abs().max() <= 1 / math.sqrt(h)  # other gates keep torch.nn's uniform init


@pytest.mark.parametrize(("cell", "forget_bias"), [("rnn", 1.0), ("gru", 1.0), ("gru", None), ("lstm", None)], ids=str)
def test_forget_bias_untouched(cell: str, forget_bias: float | None) -> None:
    """rnn/gru (the default 1.0, or null) and lstm with forget_bias=None initialise exactly like torch.nn."""
    torch.manual_seed(7)
    model = Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, forget_bias=forget_bias)
    torch.manual_seed(7)
    ref = TORCH_NN[cell](3, 4, 2, bidirectional=True)
    for (name, got), want in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(got, want), name


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("forget_bias", [3.0, 0.0, "chrono"])
def test_forget_bias_refused_without_a_forget_gate(cell: str, forget_bias: float | str) -> None:
    """A non-default forget_bias on a cell without a forget gate fails in one line (not a silent duplicate run)."""
    with pytest.raises(ValueError, match=rf"^forget_bias={forget_bias!r} applies to the LSTM family.*cell='{cell}'"):
        Recurrent(cell, 3, 4, forget_bias=forget_bias, lag=50)


# -- per-layer sizes, residual, layer norm ---------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["custom", "fused"])
def test_per_layer_hidden_sizes_match_chained_torch_layers(impl: str) -> None:
    """hidden_size=[12, 12, 8]: final state is a per-layer list and equals three chained torch.nn.LSTM layers."""
    torch.manual_seed(8)
    model = Recurrent("lstm", 5, [12, 12, 8], bidirectional=True, impl=impl)
    assert model.num_layers == 3 and model.hidden_size == 8
    x = torch.randn(2, 4, 5)
    out, (h_n, c_n) = model(x)
    assert out.shape == (2, 4, 16)
    assert isinstance(h_n, list) and isinstance(c_n, list)
    assert [tuple(s.shape) for s in h_n] == [(2, 2, 12), (2, 2, 12), (2, 2, 8)]
    assert [tuple(s.shape) for s in c_n] == [(2, 2, 12), (2, 2, 12), (2, 2, 8)]
    inp = x
    for k, (in_size, size) in enumerate([(5, 12), (24, 12), (24, 8)]):
        layer = nn.LSTM(in_size, size, bidirectional=True, batch_first=True)
        layer.load_state_dict({n: getattr(model, n.replace("_l0", f"_l{k}")) for n in layer.state_dict()})
        inp, (h_k, c_k) = layer(inp)
        assert_close_all((h_n[k], c_n[k]), (h_k, c_k))
    torch.testing.assert_close(out, inp, **TOL)
    out2, _ = model(x, (h_n, c_n))  # a per-layer list is accepted back as the initial state
    assert out2.shape == out.shape and not torch.allclose(out2, out)


def torch_layers(model: Recurrent, cell: str, sizes: list[int]) -> list[nn.RNNBase]:
    """One single-layer torch.nn module per Recurrent layer, loaded with that layer's weights."""
    layers, in_size = [], model.input_size
    for k, size in enumerate(sizes):
        layer = TORCH_NN[cell](in_size, size, batch_first=True)
        layer.load_state_dict({n: getattr(model, n.replace("_l0", f"_l{k}")) for n in layer.state_dict()})
        layers.append(layer)
        in_size = size
    return layers


@pytest.mark.parametrize("impl", ["custom", "fused"])
def test_residual_with_projection(impl: str) -> None:
    """residual=True adds the layer input (k > 0), through a bias-free projection only where widths differ."""
    torch.manual_seed(9)
    sizes = [6, 6, 8]
    model = Recurrent("gru", 4, sizes, residual=True, impl=impl)
    assert not hasattr(model, "residual_proj_l1")
    assert model.residual_proj_l2.weight.shape == (8, 6) and model.residual_proj_l2.bias is None
    x = torch.randn(2, 5, 4)
    l0, l1, l2 = torch_layers(model, "gru", sizes)
    y0 = l0(x)[0]
    y1 = l1(y0)[0] + y0
    y2 = l2(y1)[0] + model.residual_proj_l2(y1)
    out, _ = model(x)
    torch.testing.assert_close(out, y2, **TOL)


@pytest.mark.parametrize("impl", ["custom", "fused"])
@pytest.mark.parametrize("layer_norm", ["output", True], ids=["output", "legacy-true"])
def test_layer_norm_normalises_each_layer(impl: str, layer_norm: str | bool) -> None:
    """layer_norm='output' (earlier configs' true) applies LayerNorm to every layer's output: zero-mean, unit-var."""
    torch.manual_seed(10)
    model = Recurrent("lstm", 3, 5, num_layers=2, layer_norm=layer_norm, impl=impl)
    assert model.layer_norm == "output" and [n for n, _ in model.named_children()] == ["layer_norm_l0", "layer_norm_l1"]
    x = torch.randn(2, 4, 3)
    out, _ = model(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(2, 4), atol=1e-3, rtol=0)
    l0, l1 = torch_layers(model, "lstm", [5, 5])
    want = nn.functional.layer_norm(l1(nn.functional.layer_norm(l0(x)[0], (5,)))[0], (5,))
    torch.testing.assert_close(out, want, **TOL)


@pytest.mark.parametrize("impl", ["custom", "fused"])
def test_deep_residual_layernorm_stack_with_lengths(impl: str) -> None:
    """6-layer bidirectional residual+layer-norm stack: padding stays zero and never leaks into valid steps."""
    torch.manual_seed(11)
    model = Recurrent("lstm", 4, 6, num_layers=6, bidirectional=True, residual=True, layer_norm="output", impl=impl)
    x = torch.randn(3, 7, 4)
    lengths = torch.tensor([7, 3, 5])
    out, (h_n, _) = model(x, lengths=lengths)
    assert out.shape == (3, 7, 12) and h_n.shape == (12, 3, 6)
    assert torch.isfinite(out).all()
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(out[b, n:] == 0)
        assert torch.all(out[b, :n].abs().sum(-1) > 0)
        alone, (h_alone, _) = model(x[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1, :n], alone, **TOL)
        torch.testing.assert_close(h_n[:, b : b + 1], h_alone, **TOL)


# -- argument validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"cell": "transformer"},
            r"cell: unknown cell 'transformer'; allowed: gru, lstm, peephole_lstm, rnn, rnn_relu",
        ),
        ({"hidden_size": 0}, r"hidden_size must be a positive int, got 0"),
        ({"hidden_size": -4}, r"hidden_size must be a positive int, got -4"),
        ({"hidden_size": [12, 0, 8]}, r"hidden_size must be a positive int, got 0"),
        ({"dropout": 1.0}, r"dropout must be a float in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be a float in \[0, 1\), got -0.1"),
        ({"cell": "peephole_lstm", "impl": "fused"}, r"impl='fused' has no kernel for cell='peephole_lstm'.*'custom'"),
        ({"impl": "cudnn"}, r"impl must be one of auto, fused, custom, got 'cudnn'"),
        ({"cell": "gru", "nonlinearity": "relu"}, r"nonlinearity='relu' applies to cell='rnn' only"),
        ({"layer_norm": "inside"}, r"^layer_norm must be one of none, cell, output, got 'inside'$"),
        ({"layer_norm": "cell", "impl": "fused"}, r"^impl='fused' cannot run layer_norm='cell'.*'custom' or 'auto'$"),
        (
            {"cell": "peephole_lstm", "layer_norm": "cell"},
            r"^layer_norm='cell' is defined for cell in gru, lstm, rnn, got cell='peephole_lstm'.*'output' or 'none'$",
        ),
        ({"forget_bias": "crono"}, r"^forget_bias must be a number, 'chrono' or null, got 'crono'$"),
        ({"forget_bias": True}, r"^forget_bias must be a number, 'chrono' or null, got True$"),
        ({"forget_bias": "chrono"}, r"^forget_bias='chrono' needs T_max: set chrono_t_max, or use a task"),
        ({"forget_bias": "chrono", "chrono_t_max": 1}, r"^chrono_t_max must be an int >= 2 .*got 1$"),
        ({"forget_bias": "chrono", "lag": 1}, r"^forget_bias='chrono' needs T_max >= 2 and the task's lag is 1: set "),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    """Bad constructor arguments raise ValueError naming the argument and what is allowed."""
    args = {"cell": "lstm", "input_size": 3, "hidden_size": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        Recurrent(**args)


@pytest.mark.parametrize("impl", ["custom", "fused"])
def test_input_feature_mismatch_at_forward(impl: str) -> None:
    """A wrong feature size at forward raises ValueError naming input_size and the size received."""
    model = Recurrent("lstm", 3, 4, impl=impl)
    with pytest.raises(ValueError, match=r"input feature size must equal input_size=3, got 5"):
        model(torch.randn(2, 4, 5))


# -- dropout ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["custom", "fused"])
def test_dropout_between_layers_train_only(impl: str) -> None:
    """Inter-layer dropout changes outputs in train mode only; eval equals the same weights with dropout=0."""
    torch.manual_seed(12)
    model = Recurrent("lstm", 3, 8, num_layers=3, dropout=0.5, impl=impl)
    plain = Recurrent("lstm", 3, 8, num_layers=3, dropout=0.0, impl=impl)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 6, 3)
    want, _ = plain(x)
    model.eval()
    got_eval, _ = model(x)
    torch.testing.assert_close(got_eval, want, **TOL)
    model.train()
    torch.manual_seed(0)
    train_a, _ = model(x)
    torch.manual_seed(1)
    train_b, _ = model(x)
    torch.manual_seed(0)
    train_a_again, _ = model(x)
    assert (train_a - want).abs().max() > 1e-2
    assert (train_a - train_b).abs().max() > 1e-2
    torch.testing.assert_close(train_a, train_a_again, **TOL)
    single = Recurrent("lstm", 3, 8, num_layers=1, dropout=0.5, impl=impl).train()
    assert torch.equal(single(x)[0], single(x)[0])  # nothing to drop between layers of a one-layer stack


def test_dropout_masks_identical_across_impls() -> None:
    """Under one seed the custom and fused impls draw the same dropout masks and agree in train mode."""
    torch.manual_seed(13)
    fused, custom = twin("gru", "fused", input_size=3, hidden_size=5, num_layers=3, dropout=0.3)
    x = torch.randn(2, 4, 3)
    torch.manual_seed(5)
    out_f, h_f = fused.train()(x)
    torch.manual_seed(5)
    out_c, h_c = custom.train()(x)
    assert_close_all((out_c, h_c), (out_f, h_f))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_wrong_state_shape_names_the_expected_shape(cell: str) -> None:
    rec = Recurrent(cell, 3, 5, num_layers=2)
    h = torch.zeros(1, 4, 5)
    state = (h, h) if cell == "lstm" else h
    with pytest.raises(
        ValueError, match=r"^state must have shape \(2, 4, 5\) \(num_layers\*dirs, batch, hidden\), got \(1, 4, 5\)$"
    ):
        rec(torch.zeros(4, 6, 3), state)


# -- one step at a time (decoders) ---------------------------------------------------------------------------
def flat(state: Tensor | tuple | list) -> tuple[Tensor, ...]:
    """Every tensor of a final state, whether (h, c), h, or per-layer lists of them."""
    return tuple(t for s in states(state) for t in (s if isinstance(s, list) else [s]))


@pytest.mark.parametrize(("cell", "impl"), CELL_IMPLS)
@pytest.mark.parametrize(
    "kwargs",
    [{"hidden_size": 5, "num_layers": 2}, {"hidden_size": [6, 4, 4], "residual": True, "layer_norm": "output"}],
    ids=["uniform", "sizes-residual-ln"],
)
def test_step_equals_forward_step_by_step(cell: str, impl: str, kwargs: dict) -> None:
    """Chaining `step` over a sequence gives `forward`'s outputs, final state and gradients (either impl)."""
    torch.manual_seed(3)
    rec = Recurrent(cell, 3, impl=impl, **kwargs)
    x = torch.randn(4, 6, 3)
    out, final = rec(x)
    grads = torch.autograd.grad(out.square().sum() + sum(s.sum() for s in flat(final)), list(rec.parameters()))
    state, steps = None, []
    for t in range(x.shape[1]):
        y, state = rec.step(x[:, t], state)
        steps.append(y)
    stepped = torch.stack(steps, 1)
    loss = stepped.square().sum() + sum(s.sum() for s in flat(state))
    assert_close_all((stepped, *flat(state)), (out, *flat(final)))
    assert_close_all(torch.autograd.grad(loss, list(rec.parameters())), grads)


def test_step_refuses_bidirectional_and_wrong_input() -> None:
    with pytest.raises(ValueError, match=r"^step\(\) runs forward in time only; a bidirectional stack needs"):
        Recurrent("lstm", 3, 5, bidirectional=True).step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"^step\(\) input must be \(batch, input_size=3\), got \(2, 1, 3\)$"):
        Recurrent("gru", 3, 5).step(torch.zeros(2, 1, 3))


@pytest.mark.parametrize(
    ("cell", "impl", "device", "fused"),
    [
        ("lstm", "auto", "cpu", True),
        ("rnn", "auto", "cpu", True),
        ("gru", "auto", "cpu", False),  # fast_gru's hand-written backward beats torch's CPU GRU (rnnbench-bench)
        ("gru", "auto", "cuda", True),
        ("peephole_lstm", "auto", "cuda", False),
        ("gru", "fused", "cpu", True),
        ("lstm", "custom", "cuda", False),
    ],
)
def test_auto_impl_picks_the_faster_path_per_device(cell: str, impl: str, device: str, fused: bool) -> None:
    assert Recurrent(cell, 2, 3, impl=impl).fused_on(torch.device(device)) is fused

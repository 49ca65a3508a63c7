"""layer_norm="cell" (Ba et al. 2016): equality with float64 references written from the paper's equations, gradcheck,
variable lengths and both directions, state_dict keys, init, and the path `auto` takes."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch.func import functional_call

from rnnbench.models.probe import probe
from rnnbench.models.recurrent import Recurrent

EPS = 1e-5
LN_CELLS = ["lstm", "gru", "rnn"]


def ln_ref(z: Tensor, gain: Tensor, bias: Tensor | None) -> Tensor:
    """LN(z; gain, bias) = (z - mu) / sqrt(sigma^2 + eps) * gain + bias over the last axis, written out."""
    mu = z.mean(-1, keepdim=True)
    var = ((z - mu) ** 2).mean(-1, keepdim=True)
    out = (z - mu) / torch.sqrt(var + EPS) * gain
    return out if bias is None else out + bias


def ref_step(cell: str, p: dict[str, Tensor], x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """One step of Ba et al.'s equations for one example (x (I,), h (H,)); p holds one layer-direction's weights."""
    wx, wh = p["weight_ih"] @ x, p["weight_hh"] @ h
    if cell == "lstm":  # supplementary material: (f,i,o,g) = LN(W_h h; a1,b1) + LN(W_x x; a2,b2) + b
        a = ln_ref(wh, p["ln_hh_weight"], p["ln_hh_bias"]) + ln_ref(wx, p["ln_ih_weight"], p["ln_ih_bias"])
        i, f, g, o = (a + p["bias_ih"] + p["bias_hh"]).chunk(4)  # torch.nn's gate order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(ln_ref(c, p["ln_c_weight"], p["ln_c_bias"])), c
    if cell == "gru":  # both products normalised, biases outside; r acts on the recurrent candidate (torch.nn)
        gx = ln_ref(wx, p["ln_ih_weight"], p["ln_ih_bias"]) + p["bias_ih"]
        gh = ln_ref(wh, p["ln_hh_weight"], p["ln_hh_bias"]) + p["bias_hh"]
        (xr, xz, xn), (hr, hz, hn) = gx.chunk(3), gh.chunk(3)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None
    # rnn, section 3.1: h_t = f(g / sigma_t * (a_t - mu_t) + b), a_t = W_hh h_{t-1} + W_xh x_t
    return torch.tanh(ln_ref(wx + wh, p["ln_weight"], None) + p["bias_ih"] + p["bias_hh"]), None


def ref_sequence(cell: str, model: Recurrent, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """The whole stack on one sequence x (T, I), both directions, layer by layer: (out (T, D*H), h_n, c_n)."""
    params = dict(model.named_parameters())
    h_n, c_n, inp = [], [], x
    for k in range(model.num_layers):
        outs = []
        for d, sfx in enumerate(["", "_reverse"][: model.num_directions]):
            p = {n[: -len(f"_l{k}{sfx}")]: v for n, v in params.items() if n.endswith(f"_l{k}{sfx}")}
            size = model.layer_sizes[k]
            h, c = x.new_zeros(size), (x.new_zeros(size) if cell == "lstm" else None)
            steps = range(inp.shape[0]) if d == 0 else reversed(range(inp.shape[0]))
            out = [None] * inp.shape[0]
            for t in steps:
                h, c = ref_step(cell, p, inp[t], h, c)
                out[t] = h
            outs.append(torch.stack(out))
            h_n.append(h)
            c_n.append(c)
        inp = torch.cat(outs, -1)
    return inp, torch.stack(h_n), (torch.stack(c_n) if cell == "lstm" else None)


def randomised(model: Recurrent) -> Recurrent:
    """Move every LN gain and bias off its 1 / 0 init, so the test sees each one used in the right place."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("ln_"):
                param.copy_(
                    torch.empty_like(param).uniform_(0.5, 1.5) if "_weight" in name else 0.3 * torch.randn_like(param)
                )
    return model


@pytest.mark.parametrize("cell", LN_CELLS)
def test_cell_layer_norm_equals_ba_et_al_equations_float64(cell: str) -> None:
    """2 layers, bidirectional, variable lengths: each sequence equals the reference run on it alone (1e-10)."""
    torch.manual_seed(0)
    model = randomised(Recurrent(cell, 3, 5, num_layers=2, bidirectional=True, layer_norm="cell").double())
    x, lengths = torch.randn(3, 6, 3, dtype=torch.float64), torch.tensor([6, 2, 4])
    out, final = model(x, lengths=lengths)
    h_n, c_n = final if cell == "lstm" else (final, None)
    for b, n in enumerate(lengths.tolist()):
        want_out, want_h, want_c = ref_sequence(cell, model, x[b, :n])
        torch.testing.assert_close(out[b, :n], want_out, atol=1e-10, rtol=1e-10)
        assert torch.all(out[b, n:] == 0)
        torch.testing.assert_close(h_n[:, b], want_h, atol=1e-10, rtol=1e-10)
        if c_n is not None:
            torch.testing.assert_close(c_n[:, b], want_c, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cell", LN_CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_cell_layer_norm(cell: str, masked: bool) -> None:
    """Analytic gradients w.r.t. input, initial state and every weight (LN gains and biases too) match finite
    differences in float64; the masked case is bidirectional with variable lengths."""
    torch.manual_seed(1)
    dirs = 2 if masked else 1
    model = randomised(Recurrent(cell, 2, 3, bidirectional=masked, layer_norm="cell").double())
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(dirs, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3]) if masked else None

    def fn(x: Tensor, h0: Tensor, *weights: Tensor) -> tuple[Tensor, ...]:
        state = (h0, h0.tanh()) if cell == "lstm" else h0
        out, final = functional_call(model, dict(zip(names, weights, strict=True)), (x, state), {"lengths": lengths})
        return (out, *(final if isinstance(final, tuple) else (final,)))

    assert torch.autograd.gradcheck(fn, (x, h0, *params), eps=1e-6, atol=1e-5)


def test_state_dict_keys_are_torch_nn_s_plus_the_documented_ln_weights() -> None:
    model = Recurrent("lstm", 3, 4, bidirectional=True, layer_norm="cell")
    per_direction = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] + [
        f"ln_{n}_{kind}" for n in ("ih", "hh", "c") for kind in ("weight", "bias")
    ]
    assert list(model.state_dict()) == [f"{n}_l0{s}" for s in ("", "_reverse") for n in per_direction]
    shapes = {n: tuple(p.shape) for n, p in model.state_dict().items()}
    assert shapes["ln_ih_weight_l0"] == shapes["ln_hh_bias_l0_reverse"] == (16,) and shapes["ln_c_weight_l0"] == (4,)
    assert list(Recurrent("gru", 3, 4, layer_norm="cell").state_dict())[4:] == [
        "ln_ih_weight_l0",
        "ln_ih_bias_l0",
        "ln_hh_weight_l0",
        "ln_hh_bias_l0",
    ]
    assert list(Recurrent("rnn", 3, 4, layer_norm="cell").state_dict())[4:] == ["ln_weight_l0"]


@pytest.mark.parametrize("forget_bias", [1.0, "chrono"])
def test_init_gains_one_biases_zero_and_torch_nn_weights_under_the_same_seed(forget_bias: float | str) -> None:
    """The LN weights take no random draws: the rest equals a plain LSTM's under one seed, forget init included."""
    torch.manual_seed(2)
    ln = Recurrent("lstm", 3, 4, num_layers=2, layer_norm="cell", forget_bias=forget_bias, lag=30)
    torch.manual_seed(2)
    plain = Recurrent("lstm", 3, 4, num_layers=2, forget_bias=forget_bias, lag=30)
    result = ln.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == [] and all(k.startswith("ln_") for k in result.missing_keys)
    for name, param in ln.state_dict().items():
        if name.startswith("ln_"):
            assert torch.equal(param, torch.full_like(param, 1.0 if "_weight" in name else 0.0)), name
        else:
            assert torch.equal(param, plain.state_dict()[name]), name


def test_auto_takes_the_custom_path_and_step_equals_forward() -> None:
    torch.manual_seed(3)
    auto = Recurrent("lstm", 3, [5, 4], layer_norm="cell", residual=True)
    custom = Recurrent("lstm", 3, [5, 4], layer_norm="cell", residual=True, impl="custom")
    custom.load_state_dict(auto.state_dict())
    assert not auto.fused_on(torch.device("cpu")) and auto.spec.name == "lstm_ln"
    x = torch.randn(2, 6, 3)
    out, (h_n, c_n) = auto(x)
    torch.testing.assert_close(out, custom(x)[0], atol=0, rtol=0)
    state, steps = None, []
    for t in range(x.shape[1]):
        y, state = auto.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), out, atol=1e-6, rtol=1e-6)
    for got, want in zip([*state[0], *state[1]], [*h_n, *c_n], strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_cell_layer_norm_differs_from_output_layer_norm_and_from_none() -> None:
    torch.manual_seed(4)
    x = torch.randn(2, 5, 3)
    outs = {}
    for mode in ("none", "output", "cell"):
        torch.manual_seed(4)
        outs[mode] = Recurrent("lstm", 3, 4, layer_norm=mode)(x)[0]
    assert (outs["cell"] - outs["none"]).abs().max() > 1e-2 and (outs["cell"] - outs["output"]).abs().max() > 1e-2


def test_probe_measures_a_cell_layer_norm_lstm() -> None:
    """The gradient probe runs on the LN cell's own step: dL/dc_t and the gate statistics come out."""
    torch.manual_seed(5)
    body = Recurrent("lstm", 2, 6, layer_norm="cell")
    x, v = torch.randn(3, 8, 2), torch.randn(6)
    result = probe(body, lambda b: (b(x)[0][:, -1] @ v).sum())
    assert result.grad_c.shape == (1, 1, 8) and (result.grad_c > 0).all()
    assert 0 < result.gates[0]["forget_mean"] < 1

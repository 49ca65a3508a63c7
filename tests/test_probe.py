"""The gradient probe measures what the seed's argument is about: the LSTM's constant error carousel (f = 1, i = 0
keeps dL/dc_t constant), a linear-regime RNN's geometric decay at rate a for W_hh = a I, gate statistics of known
weights, and the same curves as torch's own fused kernel."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from rnnbench.models.probe import probe
from rnnbench.models.recurrent import Recurrent


def last_output_loss(x: Tensor, v: Tensor) -> Callable[[Recurrent], Tensor]:
    """Loss read at the last step only: a fixed projection of the last output, summed over the batch."""
    return lambda body: (body(x)[0][:, -1] @ v).sum()


def set_block(param: Tensor, block: int, hidden: int, value: float | list[float]) -> None:
    """Fill gate block `block` (torch.nn order) of a stacked weight or bias; a list gives one value per unit."""
    rows = param[block * hidden : (block + 1) * hidden]  # (H,) or (H, in)
    with torch.no_grad():
        rows.copy_(torch.as_tensor(value, dtype=param.dtype).view(-1, *[1] * (rows.dim() - 1)).expand_as(rows))


def test_lstm_with_forget_gate_one_and_input_gate_zero_carries_dl_dc_unchanged() -> None:
    torch.manual_seed(0)
    hidden, steps = 4, 15
    body = Recurrent("lstm", 3, hidden, forget_bias=None)
    w = body.layer_weights(0, 0)
    set_block(w["bias_ih"], 0, hidden, -50.0)  # input gate sigmoid(-50) ~ 0: nothing is written
    set_block(w["bias_ih"], 1, hidden, 50.0)  # forget gate sigmoid(50) = 1 in float32: c_t = c_{t-1}
    set_block(w["weight_hh"], 3, hidden, 0.0)  # output gate blind to h_{t-1}: c reaches L only through c_T
    x = torch.randn(5, steps, 3)
    result = probe(body, last_output_loss(x, torch.randn(hidden)))
    grad_c = result.grad_c[0, 0]  # (T,)
    torch.testing.assert_close(grad_c, grad_c[-1].expand(steps), rtol=1e-6, atol=0.0)
    assert result.first_over_last(cell=True) == pytest.approx(1.0, rel=1e-6)
    assert (result.grad_h[0, 0, :-1] < 1e-12 * result.grad_h[0, 0, -1]).all()  # h_t, t < T, no longer matters
    assert result.gates[0]["forget_high"] == 1.0 and result.gates[0]["input_low"] == 1.0


@pytest.mark.parametrize("a", [0.5, 0.9])
def test_linear_regime_rnn_gradient_decays_geometrically_at_rate_a(a: float) -> None:
    torch.manual_seed(0)
    hidden, steps = 8, 30
    body = Recurrent("rnn", 2, hidden)
    w = body.layer_weights(0, 0)
    with torch.no_grad():
        w["weight_hh"].copy_(a * torch.eye(hidden))
        w["bias_ih"].zero_()
        w["bias_hh"].zero_()
    x = 1e-3 * torch.randn(4, steps, 2)  # tanh'(h) = 1 - O(1e-6): the recurrence is linear
    curve = probe(body, last_output_loss(x, torch.randn(hidden))).grad_h[0, 0].double()  # (T,)
    per_step = curve[:-1] / curve[1:]  # (T-1,)
    torch.testing.assert_close(per_step, torch.full_like(per_step, a), rtol=1e-4, atol=0)
    assert curve[0] / curve[-1] == pytest.approx(a ** (steps - 1), rel=1e-3)


def test_lstm_gate_statistics_match_hand_computed_values() -> None:
    hidden, steps = 2, 10
    body = Recurrent("lstm", 3, hidden, forget_bias=None)
    w = body.layer_weights(0, 0)
    with torch.no_grad():
        for p in w.values():
            p.zero_()  # gates = activations of b_ih alone, the same at every step
    set_block(w["bias_ih"], 0, hidden, [0.0, math.log(3.0)])  # input gate 0.5, 0.75
    set_block(w["bias_ih"], 1, hidden, [3.0, -3.0])  # forget gate 0.9526, 0.0474
    set_block(w["bias_ih"], 2, hidden, [math.atanh(0.5), 0.0])  # candidate g = 0.5, 0
    result = probe(body, last_output_loss(torch.randn(3, steps, 3), torch.ones(hidden)))
    f0 = 1 / (1 + math.exp(-3.0))
    c, c_abs = 0.0, 0.0
    for _ in range(steps):  # unit 0: c_t = f0 c_{t-1} + 0.5 * 0.5; unit 1 writes g = 0 and stays 0
        c = f0 * c + 0.25
        c_abs += c
    expected = {
        "input_mean": 0.625,
        "input_low": 0.0,
        "input_high": 0.0,
        "forget_mean": 0.5,
        "forget_low": 0.5,
        "forget_high": 0.5,
        "output_mean": 0.5,
        "output_low": 0.0,
        "output_high": 0.0,
    }
    assert result.gates[0] == pytest.approx(expected, abs=1e-6)
    assert result.cell_abs_mean[0] == pytest.approx(c_abs / (2 * steps), rel=1e-6)


def test_gru_gate_statistics_name_reset_and_update() -> None:
    hidden = 2
    body = Recurrent("gru", 3, hidden)
    w = body.layer_weights(0, 0)
    with torch.no_grad():
        for p in w.values():
            p.zero_()
    set_block(w["bias_ih"], 0, hidden, [3.0, -3.0])  # reset 0.9526, 0.0474
    set_block(w["bias_hh"], 1, hidden, [math.log(3.0), -math.log(3.0)])  # update 0.75, 0.25 (b_hh unfolded for GRU)
    result = probe(body, last_output_loss(torch.randn(2, 6, 3), torch.ones(hidden)))
    assert result.gates[0] == pytest.approx(
        {"reset_mean": 0.5, "reset_low": 0.5, "reset_high": 0.5, "update_mean": 0.5, "update_low": 0, "update_high": 0},
        abs=1e-6,
    )
    assert result.grad_c is None and result.cell_abs_mean is None


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_and_custom_bodies_with_the_same_weights_probe_identically(cell: str) -> None:
    torch.manual_seed(0)
    fused = Recurrent(cell, 3, 6, num_layers=2, bidirectional=True, impl="fused")
    custom = Recurrent(cell, 3, 6, num_layers=2, bidirectional=True, impl="custom")
    custom.load_state_dict(fused.state_dict())
    loss_fn = last_output_loss(torch.randn(4, 9, 3), torch.randn(12))
    a, b = probe(fused, loss_fn), probe(custom, loss_fn)
    assert a.grad_h.shape == (2, 2, 9)
    torch.testing.assert_close(a.grad_h, b.grad_h)
    assert a.gates == b.gates and a.loss == b.loss


def test_curve_matches_autograd_through_torch_nn_lstm_restarted_at_each_step() -> None:
    """The curves against torch.nn.LSTM restarted from (h_t, c_t) for the rest of the sequence: an independent
    check. dL/dc_t is the total derivative (BPTT's delta_c), so c_t also reaches L through h_t = o_t tanh(c_t)."""
    torch.manual_seed(0)
    steps, hidden = 10, 6
    body = Recurrent("lstm", 3, hidden, impl="fused")
    ref = nn.LSTM(3, hidden, batch_first=True)
    ref.load_state_dict(body.state_dict())
    x, v = torch.randn(4, steps, 3), torch.randn(hidden)
    result = probe(body, last_output_loss(x, v))
    for t in (0, 4, steps - 1):
        _, (h_t, c_t) = ref(x[:, : t + 1])  # (1, B, H) each
        o_t = h_t / torch.tanh(c_t)
        h, c = h_t.detach().requires_grad_(), c_t.detach().requires_grad_()
        h_of_c = h + o_t.detach() * (torch.tanh(c) - torch.tanh(c).detach())  # value h_t, c-path o_t tanh'(c_t)
        last = ref(x[:, t + 1 :], (h_of_c, c))[0][:, -1] if t < steps - 1 else h_of_c[0]
        grad_h, grad_c = torch.autograd.grad((last @ v).sum(), (h, c))
        assert float(result.grad_h[0, 0, t]) == pytest.approx(float(grad_h[0].norm(dim=-1).mean()), rel=1e-4)
        assert float(result.grad_c[0, 0, t]) == pytest.approx(float(grad_c[0].norm(dim=-1).mean()), rel=1e-4)


def test_every_layer_gets_its_own_curve_and_gate_statistics() -> None:
    body = Recurrent("gru", 2, [8, 6, 4])
    result = probe(body, last_output_loss(torch.randn(3, 7, 2), torch.randn(4)))
    assert result.grad_h.shape == (3, 1, 7) and len(result.gates) == 3
    assert all((result.grad_h[k, 0] > 0).all() for k in range(3))
    assert all(set(stats) >= {"reset_mean", "update_high"} for stats in result.gates)


def test_probe_leaves_grads_and_training_mode_alone() -> None:
    body = Recurrent("lstm", 2, 4, dropout=0.5, num_layers=2)
    grads = {n: torch.randn_like(p) for n, p in body.named_parameters()}
    for n, p in body.named_parameters():
        p.grad = grads[n].clone()
    x = torch.randn(3, 5, 2)
    first = probe(body, last_output_loss(x, torch.ones(4)))
    second = probe(body, last_output_loss(x, torch.ones(4)))
    assert body.training and body.impl == "auto"  # the probe ran on a copy, in eval mode (no dropout): repeatable
    torch.testing.assert_close(first.grad_h, second.grad_h)
    for n, p in body.named_parameters():
        torch.testing.assert_close(p.grad, grads[n])

"""forget_bias="chrono" (Tallec & Ollivier 2018): the bias distribution, T_max from the task's lag or the config,
determinism, both impls on one state_dict, and the gradient it keeps alive at lag 100 at initialisation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hydra.utils import instantiate
from scipy import stats

from rnnbench.models.probe import probe
from rnnbench.models.recurrent import Recurrent
from rnnbench.tasks.adding import AddingTask
from rnnbench.training.config import compose_config


def gate_biases(model: Recurrent, layer: int, sfx: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(b_i, b_f) as every impl sees them: bias_ih + bias_hh on the i and f slices, each (H,)."""
    size = model.layer_sizes[layer]
    total = getattr(model, f"bias_ih_l{layer}{sfx}") + getattr(model, f"bias_hh_l{layer}{sfx}")
    return total[:size].detach(), total[size : 2 * size].detach()


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
def test_chrono_biases_are_log_uniform_with_input_gate_minus_forget_gate(cell: str) -> None:
    """b_f in [0, log(T_max - 1)], b_i = -b_f exactly, exp(b_f) ~ U(1, T_max - 1) per layer and direction."""
    torch.manual_seed(0)
    t_max, hidden = 100, 2000
    model = Recurrent(cell, 3, hidden, num_layers=2, bidirectional=True, forget_bias="chrono", lag=t_max)
    assert model.chrono_t_max == t_max
    draws = []
    for k, sfx in itertools.product(range(2), ("", "_reverse")):
        b_i, b_f = gate_biases(model, k, sfx)
        assert torch.equal(b_i, -b_f)
        assert b_f.min() >= 0.0 and b_f.max() <= math.log(t_max - 1)
        assert getattr(model, f"bias_hh_l{k}{sfx}")[: 2 * hidden].abs().max() == 0  # all of it sits in bias_ih
        ks = stats.kstest(b_f.exp().double().numpy(), stats.uniform(loc=1, scale=t_max - 2).cdf)
        assert ks.pvalue > 0.01, (k, sfx, ks)
        # log-uniform, not uniform: the median time constant is ~T_max/2 but half the mass of b_f is above log(50)
        assert float(b_f.median()) == pytest.approx(math.log(1 + (t_max - 2) / 2), abs=0.1)
        draws.append(b_f)
    assert all(not torch.equal(a, b) for a, b in itertools.combinations(draws, 2))  # independent per layer/direction


def test_chrono_t_max_overrides_the_lag_and_other_gates_keep_torch_init() -> None:
    torch.manual_seed(1)
    hidden = 500
    model = Recurrent("lstm", 3, hidden, forget_bias="chrono", chrono_t_max=10, lag=1000)
    assert model.chrono_t_max == 10
    _, b_f = gate_biases(model, 0, "")
    assert b_f.max() <= math.log(9) and b_f.max() > math.log(8.5)
    bound = 1 / math.sqrt(hidden)
    assert model.bias_ih_l0[2 * hidden :].abs().max() <= bound  # g and o biases: torch.nn's uniform init


def test_chrono_is_deterministic_under_the_seed_and_leaves_the_weights_alone() -> None:
    """Same seed, same biases; the weights equal a forget_bias=1 model's under the same seed (drawn after them)."""
    kwargs = {"input_size": 3, "hidden_size": 8, "num_layers": 2, "lag": 50}
    torch.manual_seed(5)
    a = Recurrent("lstm", forget_bias="chrono", **kwargs)
    torch.manual_seed(5)
    b = Recurrent("lstm", forget_bias="chrono", **kwargs)
    torch.manual_seed(5)
    plain = Recurrent("lstm", **kwargs)
    sa, sb, sp = a.state_dict(), b.state_dict(), plain.state_dict()
    assert list(sa) == list(sb) == list(sp)
    for name, pa in sa.items():
        assert torch.equal(pa, sb[name]), name
        if name.startswith("weight"):
            assert torch.equal(pa, sp[name]), name
    torch.manual_seed(6)
    c = Recurrent("lstm", forget_bias="chrono", **kwargs)
    assert not torch.equal(c.bias_ih_l0, a.bias_ih_l0)


def test_one_chrono_state_dict_gives_the_same_output_on_both_impls() -> None:
    """The init survives the fused path's bias_ih + bias_hh: fused, custom and torch.nn agree on it."""
    torch.manual_seed(2)
    fused = Recurrent("lstm", 3, 6, num_layers=2, bidirectional=True, forget_bias="chrono", lag=40, impl="fused")
    custom = Recurrent("lstm", 3, 6, num_layers=2, bidirectional=True, impl="custom")
    custom.load_state_dict(fused.state_dict())
    ref = torch.nn.LSTM(3, 6, 2, bidirectional=True, batch_first=True)
    ref.load_state_dict(fused.state_dict())
    x, lengths = torch.randn(4, 9, 3), torch.tensor([9, 4, 7, 1])
    for got, want in zip(custom(x, lengths=lengths)[1], fused(x, lengths=lengths)[1], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(custom(x)[0], ref(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
def test_chrono_keeps_dl_dc_alive_at_lag_100_where_forget_bias_1_loses_it(cell: str) -> None:
    """At init, ||dL/dc_t|| at lag 100 (loss read at the last step) is orders of magnitude larger with chrono than
    with forget bias 1: sigmoid(1)^100 ~ 2.5e-14, while chrono's slowest units forget at ~1/T_max per step."""
    steps, hidden = 101, 32
    x = torch.rand(8, steps, 2)  # adding-task-like inputs
    v = torch.randn(hidden)
    curves = {}
    for forget_bias in (1.0, "chrono"):
        torch.manual_seed(3)  # the same weights for both: only the i/f biases differ
        body = Recurrent(cell, 2, hidden, forget_bias=forget_bias, lag=steps - 1)
        curves[forget_bias] = probe(body, lambda b: (b(x)[0][:, -1] @ v).sum()).grad_c[0, 0]  # (T,), index t
    lag_100 = {k: float(c[0]) for k, c in curves.items()}  # t = 0 is lag T-1-t = 100
    assert lag_100[1.0] > 0
    assert lag_100["chrono"] / lag_100[1.0] > 1e3
    assert float(curves["chrono"][0] / curves["chrono"][-1]) > 1e-3  # chrono: at most ~3 decades lost over 100 steps


def test_the_task_hands_its_lag_to_the_model_unless_the_config_sets_t_max() -> None:
    assert AddingTask(seq_len=120).model_kwargs() == {"input_size": 2, "lag": 120}
    for extra, want in (([], 120), (["model.chrono_t_max=30"], 30)):
        cfg = compose_config(["model=lstm", "model.forget_bias=chrono", "task=adding", "task.seq_len=120", *extra])
        task = instantiate(cfg.task)
        assert instantiate(cfg.model, **task.model_kwargs()).chrono_t_max == want

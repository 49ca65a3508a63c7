"""`Recurrent.flatten_parameters`: cuDNN's flat weight buffer, tested on CPU with cuDNN's op stood in for.

cuDNN itself needs a GPU (tests/test_gpu.py checks the real thing there). Here `torch._cudnn_rnn_flatten_weight` is
replaced by a stand-in that does what torch documents it to do, copy the weights into one buffer and `set_` each to
its view (in the order given: cuDNN's own layout differs, which only a GPU can check), and `cudnn_takes` is told yes.
What is tested is rnnbench's side: when the call happens, with which weights and arguments, and that values,
gradients, Parameter objects and state_dicts stay the same.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from rnnbench.models import recurrent
from rnnbench.models.recurrent import Recurrent

MODES = {"RNN_RELU": 0, "RNN_TANH": 1, "LSTM": 2, "GRU": 3}  # cudnnRNNMode_t


@pytest.fixture
def flatten_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Stand in for cuDNN (as if every weight were on a GPU it takes); returns the calls made, one dict each."""
    calls: list[dict] = []

    def fake_flatten(weights, stride0, input_size, mode, hidden, proj, layers, batch_first, bidirectional) -> Tensor:
        assert not torch.is_grad_enabled()  # an in-place change of leaf parameters
        calls.append(
            dict(weights=list(weights), stride0=stride0, input_size=input_size, mode=mode, hidden=hidden, proj=proj,
                 layers=layers, batch_first=batch_first, bidirectional=bidirectional)
        )  # fmt: skip
        buffer = torch.cat([w.reshape(-1) for w in weights])
        offset = 0
        for w in weights:
            w.set_(buffer.untyped_storage(), offset, w.shape, w.stride())
            offset += w.numel()
        return buffer

    monkeypatch.setattr(torch, "_cudnn_rnn_flatten_weight", fake_flatten)
    monkeypatch.setattr(torch.backends.cudnn.rnn, "get_cudnn_mode", MODES.__getitem__)
    monkeypatch.setattr(recurrent, "cudnn_takes", lambda weights: True)
    return calls


def _storages(model: Recurrent, layer: int) -> set[int]:
    """The storages holding one layer's weights (both directions)."""
    weights = [w for d in range(model.num_directions) for w in model.layer_weights(layer, d).values()]
    return {w.untyped_storage().data_ptr() for w in weights}


def _run(model: Recurrent, x: Tensor, lengths: Tensor | None = None) -> list[Tensor]:
    """Output, final state and every parameter's gradient of one forward + backward."""
    model.zero_grad(set_to_none=True)
    out, state = model(x, lengths=lengths)
    parts = state if isinstance(state, tuple) else (state,)  # h (, c): each a tensor, or a per-layer list
    final = [t for part in parts for t in (part if isinstance(part, list) else [part])]
    (out.square().sum() + sum(t.sum() for t in final)).backward()
    return [out, *final, *(p.grad for p in model.parameters())]


@pytest.mark.parametrize(("cell", "mode"), [("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "RNN_TANH")])
def test_moving_the_module_flattens_each_layer_and_changes_nothing(
    flatten_calls: list[dict], cell: str, mode: str
) -> None:
    torch.manual_seed(0)
    model = Recurrent(cell, 3, [5, 4], bidirectional=True, impl="fused", layer_norm="output")
    x, lengths = torch.randn(2, 6, 3), torch.tensor([6, 4])
    params = dict(model.named_parameters())
    before = [t.clone() for t in _run(model, x)] + [t.clone() for t in _run(model, x, lengths)]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    nn.ModuleDict({"body": model}).to(torch.float32)  # as Lightning moves its LightningModule to the device

    assert [(c["input_size"], c["hidden"], c["bidirectional"]) for c in flatten_calls] == [(3, 5, True), (10, 4, True)]
    for k, call in enumerate(flatten_calls):
        assert (call["stride0"], call["mode"], call["proj"], call["layers"], call["batch_first"]) == (
            4, MODES[mode], 0, 1, False,
        )  # fmt: skip
        names = [f"{w}_l{k}{sfx}" for sfx in ("", "_reverse") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        assert all(got is params[name] for got, name in zip(call["weights"], names, strict=True))
        assert len(_storages(model, k)) == 1  # one buffer per layer (both directions: one kernel call) ...
    assert _storages(model, 0) != _storages(model, 1)  # ... and one per layer
    assert dict(model.named_parameters()) == params  # the same Parameter objects: an optimiser keeps them
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    after = _run(model, x) + _run(model, x, lengths)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_loading_a_state_dict_keeps_the_flat_layout(flatten_calls: list[dict]) -> None:
    model = Recurrent("lstm", 3, 4, num_layers=2, impl="fused").to(torch.float32)
    storages = [_storages(model, k) for k in range(2)]
    source = Recurrent("lstm", 3, 4, num_layers=2, impl="fused")
    model.load_state_dict(source.state_dict())  # what Lightning does with a checkpoint (fit/test ckpt_path)
    assert [_storages(model, k) for k in range(2)] == storages
    loaded = source.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in model.state_dict().items())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _run(model, torch.randn(2, 5, 3))
    optimizer.step()  # updates land in the flat buffer through the views
    assert [_storages(model, k) for k in range(2)] == storages
    assert not torch.equal(model.weight_hh_l1, source.weight_hh_l1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cell": "lstm", "impl": "custom"},
        {"cell": "peephole_lstm"},  # no fused kernel
        {"cell": "lstm", "layer_norm": "cell"},  # normalises inside the step: custom path only
        {"cell": "gru", "impl": "auto"},  # auto takes fast_gru on CPU
    ],
)
def test_no_flattening_where_the_fused_kernel_does_not_run(flatten_calls: list[dict], kwargs: dict) -> None:
    Recurrent(input_size=3, hidden_size=4, **kwargs).to(torch.float32)
    assert flatten_calls == []


def test_a_no_op_without_cudnn() -> None:
    """The real `cudnn_takes` on CPU tensors: nothing is touched (each weight keeps its own storage)."""
    model = Recurrent("lstm", 3, 4, bidirectional=True, impl="fused")
    weights = [w for d in range(2) for w in model.layer_weights(0, d).values()]
    assert recurrent.cudnn_takes(weights) is False
    model.double()
    assert len(_storages(model, 0)) == 8 and model.weight_ih_l0.dtype == torch.float64

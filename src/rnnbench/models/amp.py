"""Mixed precision (`trainer.precision=bf16-mixed`, `16-mixed`) for the hand-written recurrences: float32 inside.

Under autocast, torch casts the inputs of the ops on its lists per op (matmuls to bfloat16 / float16, layer norm and
losses to float32), so the hoisted input projection `F.linear(x, W_ih)` arrives in half precision while h0, c0 and
W_hh stay float32. `fast_lstm` and `fast_gru` write into preallocated outputs (`out=`) and run their own backward,
which need one dtype throughout: mixed, they fail ("self and mat2 must have the same dtype"). These decorators are
torch's own remedy for custom autograd Functions (`torch.amp.custom_fwd(cast_inputs=torch.float32)` and
`custom_bwd`; PyTorch's AMP examples, "Functions that need a particular dtype"), applied for the device the inputs
are on (torch's decorators are fixed to one device type): under autocast the half-precision inputs are cast to
float32 and the Function runs with autocast off, forward and backward; outside autocast they do nothing, and
float64 inputs (gradcheck) are never cast.

So under mixed precision the hand-written recurrences carry their state and compute their BPTT in float32, fed by a
half-precision input projection. torch's fused kernels follow autocast's own rules: measured on CPU, the oneDNN LSTM
and the Elman RNN run in bfloat16 (the LSTM in float32 where oneDNN has no bfloat16: `onednn_lacks_bf16`) and
the GRU in float32; under CUDA autocast cuDNN runs on a half-precision copy of
the weights (aten's AutocastRNN.cpp). The per-step loop (`layer.run_layer`: the layer-normalised cells, the Elman
RNN's custom path) follows autocast op by op.
The implementations therefore differ in precision under `*-mixed`: compare cells on one implementation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def _device_type(args: tuple[Any, ...]) -> str:
    """The device type of the first tensor argument ("cpu" when there is none)."""
    return next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")


def float32_forward(forward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an autograd.Function's `forward(ctx, *tensors)`: under autocast on the inputs' device, floating
    inputs are cast to float32 and it runs with autocast off (`torch.amp.custom_fwd(cast_inputs=torch.float32)`)."""

    @functools.wraps(forward)
    def wrapped(ctx: Any, *args: Any) -> Any:
        ctx.amp_device_type = _device_type(args)
        return torch.amp.custom_fwd(forward, device_type=ctx.amp_device_type, cast_inputs=torch.float32)(ctx, *args)

    return wrapped


def float32_backward(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the matching `backward(ctx, *grads)`: it runs with autocast off on the forward's device, whatever the
    caller's autocast state (the gradients arriving are float32, as the forward's outputs were)."""

    @functools.wraps(backward)
    def wrapped(ctx: Any, *grads: Any) -> Any:
        with torch.autocast(ctx.amp_device_type, enabled=False):
            return backward(ctx, *grads)

    return wrapped


def onednn_lacks_bf16(device: torch.device) -> bool:
    """Whether CPU bfloat16 autocast is on where oneDNN has no bfloat16 kernels (CPUs without AVX-512 or AMX, as
    this project's 2-core machine). torch hands the fused LSTM to oneDNN in bfloat16 there, and oneDNN fails with
    "could not create a primitive descriptor for the LSTM forward propagation primitive"; the caller then runs the
    kernel in float32, as torch's CPU GRU runs under autocast everywhere. A torch built without oneDNN never hands
    the LSTM to it, so nothing needs casting there."""
    return (
        device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )

"""Which `trainer.precision` values a run may use, checked at launch, and why Lightning's others are refused.

Lightning's Trainer takes ten spellings; rnnbench runs these (short forms 32, 64, bf16 and 16 mean the same):

- `32-true` (the default) and `64-true`: every cell and implementation, on CPU and GPU.
- `bf16-mixed`: autocast to bfloat16 around each step, weights and optimiser in float32. Every cell and
  implementation works: the hand-written recurrences compute in float32 inside (`models/amp.py`), torch's fused
  kernels and the per-step loop in autocast's precision. Tested end to end on CPU; on a GPU unmeasured.
- `16-mixed`: autocast to float16 with Lightning's gradient scaler, for a GPU. On CPU Lightning would run
  `bf16-mixed` in its place (with a warning), so `trainer.accelerator=cpu` refuses it; with `auto` on a machine
  without a GPU the swap happens and run.json's `device.precision` says `bf16-mixed`. Unmeasured on a GPU.

Refused, each for a reason a user can check:

- `16-true`: weights and Adam's state in float16. Adam's eps = 1e-8 is 0 in float16 and every cell's training loss
  was NaN at the second step (measured on CPU, adding task).
- `bf16-true`: weights in bfloat16, 8 significant bits, so an update below 1/256 of a weight is lost, unequally
  across cells and learning rates; and torch has no cuDNN RNN kernel for bfloat16 (`torch.backends.cudnn.
  is_acceptable`), so on a GPU the fused path would leave cuDNN. Use `bf16-mixed`.
- `transformer-engine`, `transformer-engine-float16`: NVIDIA Transformer Engine swaps `nn.Linear` layers for its
  fp8 ones; it has no recurrent kernels and is no dependency of rnnbench.
"""

from __future__ import annotations

ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}  # Lightning's short forms
SUPPORTED = ("32-true", "bf16-mixed", "64-true", "16-mixed")
GPU_ONLY = ("16-mixed",)
REFUSED = {
    "16-true": "trains the weights in float16: Adam's eps (1e-8) is 0 there and the loss was NaN at step 2",
    "bf16-true": "trains the weights in bfloat16 (8 significant bits: small updates are lost) and has no cuDNN RNN "
    "kernel",
    "transformer-engine": "is NVIDIA Transformer Engine's fp8, which has no recurrent kernels",
    "transformer-engine-float16": "is NVIDIA Transformer Engine's fp8, which has no recurrent kernels",
}


def canonical(precision: object) -> str | None:
    """Lightning's full name of a precision value (32 -> '32-true', 'bf16' -> 'bf16-mixed'); None stays None."""
    if precision is None:
        return None
    text = str(precision)
    return ALIASES.get(text, text)


def check_precision(precision: object, accelerator: object = "auto") -> str | None:
    """The one-line error for a `trainer.precision` that rnnbench does not run (given `trainer.accelerator`), or
    None when it runs."""
    name = canonical(precision)
    allowed = f"one of {', '.join(SUPPORTED)} (16-mixed on a GPU only; short forms 32, 64, bf16, 16)"
    if name is None or isinstance(precision, bool):
        return None if precision is None else f"trainer.precision must be {allowed}, got {precision!r}"
    if name in REFUSED:
        return f"trainer.precision={precision} is not supported: it {REFUSED[name]}; use bf16-mixed (or 32-true)"
    if name not in SUPPORTED:
        return f"trainer.precision must be {allowed}, got {precision!r}"
    if name in GPU_ONLY and str(accelerator).lower() == "cpu":
        return (
            f"trainer.precision={precision} needs a GPU (float16 autocast; on CPU Lightning would run bf16-mixed "
            "instead): use trainer.precision=bf16-mixed with trainer.accelerator=cpu"
        )
    return None

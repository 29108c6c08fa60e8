"""Numerical precision: the training precision `runtime.precision` chooses, float32 for
evaluation and attributions.

Training (`runtime.precision`):

- `fp32` (the default): IEEE float32 throughout, as the paper trained. On CUDA TF32 is
  turned off for the whole training (forward and backward): Ampere and newer GPUs
  otherwise convolve in TF32 (a 10-bit mantissa), so an "fp32" result would depend on the
  GPU generation. Numbers from different GPUs, and from CPUs, stay comparable.
- `bf16` / `fp16`: the forward pass and the losses under torch.autocast on CUDA (fp16 with
  a GradScaler; bf16 needs none). TF32 is left at torch's defaults: these are reduced
  precisions already. Asked for on a CPU or MPS job they are refused with one line rather
  than silently run in float32 (results would then be recorded as what they are not).
- `auto`: the fastest safe choice per device: bf16 where the GPU has it natively (Ampere
  and newer), else fp16 with a loss scaler (T4, sm_75, where bf16 is only emulated),
  float32 on CPU and MPS. Runs of one config may then differ in precision across machines;
  every run records the precision it trained in (metrics.json `environment.precision`,
  runs.csv `precision`), and the statistics refuse to pool different ones
  (igkd.analysis.conditions).

Evaluation (the reported test and validation accuracy) always runs in float32 with TF32
off (`EVAL_PRECISION`, `full_fp32`): the reported number measures the trained weights
(kept in float32 by every precision) the same way whatever they were trained in.

Attributions are the scientific output, so the precompute runs in true float32 as well.
"""

from __future__ import annotations

import contextlib

import torch

from igkd.devices import resolve_precision

PRECISION = "float32 (TF32 off)"  # what `full_fp32` guarantees; recorded in precompute files
EVAL_PRECISION = "fp32"  # every reported accuracy (igkd.training.loop.accuracy)
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def full_fp32(device: str | torch.device):
    """IEEE float32 matmuls and convolutions inside (TF32 off), the previous flags after."""
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class MixedPrecision:
    """How a training step runs at the runtime.precision `precision` on `device`."""

    def __init__(self, device: str | torch.device, precision: str = "fp32") -> None:
        self.device_type = torch.device(device).type
        self.device = device
        self.name = resolve_precision(precision, device)  # 'fp32', 'bf16' or 'fp16'
        self.dtype = _DTYPES.get(self.name)
        self.enabled = self.dtype is not None  # autocast on
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def scope(self):
        """Context for the whole training (forward, backward, optimiser): under fp32 on CUDA,
        TF32 off; nothing elsewhere."""
        return full_fp32(self.device) if self.name == "fp32" else contextlib.nullcontext()

    def autocast(self):
        """Context for the forward pass and the losses (not for backward)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """loss.backward() and optimizer.step(), through the loss scaler when float16 needs one."""
        if not self.scaler.is_enabled():
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict | None) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)

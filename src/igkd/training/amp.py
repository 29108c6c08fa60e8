"""Numerical precision: mixed precision for training on CUDA, full float32 for attributions.

Training: on CUDA the forward pass and losses run under torch.autocast, bfloat16 where
the GPU has it natively (no loss scaling needed), else float16 with a GradScaler; on CPU
and MPS nothing changes, so CPU results are bit-for-bit those of a plain step.

Attributions are the scientific output, so the precompute runs in true float32:
`full_fp32` turns off TF32, which Ampere and newer GPUs otherwise use for cuDNN
convolutions (a 10-bit mantissa, so maps and completeness errors would depend on the GPU).
"""

from __future__ import annotations

import contextlib

import torch

PRECISION = "float32 (TF32 off)"  # what `full_fp32` guarantees; recorded in precompute files


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
    def __init__(self, device: str | torch.device) -> None:
        self.device_type = torch.device(device).type
        self.enabled = self.device_type == "cuda"
        self.dtype = None
        if self.enabled:
            # native bf16 only (Ampere and newer): on older GPUs (T4, sm_75) bf16 is emulated and
            # slow, and fp16 with a loss scaler is the fast path
            native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
            self.dtype = torch.bfloat16 if native_bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    @property
    def name(self) -> str:
        """'bf16', 'fp16' or 'off' (recorded with a run's environment)."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "off")

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

"""Mixed precision for training on CUDA; exactly the plain float32 step everywhere else.

On CUDA the forward pass and losses run under torch.autocast: bfloat16 where the GPU
supports it (no loss scaling needed), else float16 with a GradScaler. On CPU and MPS
nothing changes, so CPU results are bit-for-bit those of a plain step.
"""

from __future__ import annotations

import contextlib

import torch


class MixedPrecision:
    def __init__(self, device: str | torch.device) -> None:
        self.device_type = torch.device(device).type
        self.enabled = self.device_type == "cuda"
        self.dtype = None
        if self.enabled:
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
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

"""Which device the run will use, and what identifies it in the calibration cache.

A calibration is only as good as its match to the device the jobs will run on, so the
cache is split by device: its type (cpu, cuda, mps) and the hardware's name (the CPU
model, the GPU's name). `auto` resolves as the jobs resolve it (igkd.devices.pick_device).
"""

from __future__ import annotations

import platform
import re
import socket
from dataclasses import dataclass

from igkd.io import InputError

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
CPUINFO = "/proc/cpuinfo"


@dataclass(frozen=True)
class DeviceInfo:
    """The device measured on: `device` as torch takes it, plus where and what it is."""

    device: str  # cpu | cuda | cuda:<k> | mps
    kind: str  # cpu | cuda | mps
    name: str  # CPU model or GPU name
    hostname: str
    torch: str

    @property
    def cache_stem(self) -> str:
        """File name (without .json) of this device's calibration: type and hardware name."""
        return f"{self.kind}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.name).strip('_')}"

    def where(self) -> dict:
        return {"hostname": self.hostname, "device": self.device, "device_name": self.name, "torch": self.torch}


def check_device(requested: str) -> str:
    """`requested` if it is a device string igkd accepts, else a clean error."""
    if not DEVICE_PATTERN.fullmatch(requested or ""):
        raise InputError(f"device {requested!r}: expected auto, cpu, cuda, cuda:<k> or mps")
    return requested


def device_kind(device: str) -> str:
    return device.split(":")[0]


def resolve_device(requested: str) -> str:
    """The device `requested` stands for on this machine; auto as the jobs resolve it."""
    from igkd.devices import pick_device

    return pick_device(check_device(requested))


def available(device: str) -> bool:
    """Whether this machine can run on `device` (so it can be calibrated here)."""
    import torch

    kind = device_kind(device)
    if kind == "cpu":
        return True
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if not torch.cuda.is_available():
        return False
    index = int(device.split(":")[1]) if ":" in device else 0
    return index < torch.cuda.device_count()


def describe(device: str) -> DeviceInfo:
    """Identity of `device` on this machine (it must be available)."""
    import torch

    kind = device_kind(device)
    if kind == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
    elif kind == "mps":
        name = "Apple MPS"
    else:
        name = cpu_model()
    return DeviceInfo(device, kind, name, socket.gethostname(), str(torch.__version__))


def cpu_model() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open(CPUINFO) as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"

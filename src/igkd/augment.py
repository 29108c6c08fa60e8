"""Whole-batch augmentation on the device: crop, flip and the IG overlay.

The attribution map travels through the same crop and flip as the image it is blended
into (the reference code blended an un-transformed map into a transformed image).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-12


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B,3,H,W) -> float in [0,1]."""
    return images_u8.float().div_(255.0)


def crop_flip(batch: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding) and horizontal flip, drawn per image, applied to all channels.

    Stack the image and its map along channels before calling so both get one transform.
    """
    n, channels, height, width = batch.shape
    device = batch.device
    if padding > 0:
        padded = F.pad(batch, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(device)
        rows = (dy[:, None] + torch.arange(height, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width, device=device))[:, None, None, :]
        batch = padded[
            torch.arange(n, device=device)[:, None, None, None],
            torch.arange(channels, device=device)[None, :, None, None],
            rows,
            cols,
        ]
    if flip:
        mask = (torch.rand(n, generator=generator, device="cpu") < 0.5).to(device)
        batch = torch.where(mask[:, None, None, None], batch.flip(3), batch)
    return batch


def power_minmax(maps: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """maps (B,H,W) ** exponent (B,), then each map min-max scaled to [0,1]."""
    powered = maps.clamp_min(0).pow(exponent[:, None, None])
    flat = powered.flatten(1)
    low = flat.min(1).values[:, None, None]
    high = flat.max(1).values[:, None, None]
    return (powered - low) / (high - low).clamp_min(EPS)


def log_uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def augment_batch(
    images_u8: torch.Tensor,
    maps: torch.Tensor | None,
    *,
    padding: int,
    flip: bool,
    overlay_p: float,
    power_range: tuple[float, float],
    blend: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The student's input batch in [0,1]: crop + flip, and with probability `overlay_p`
    per image the power-scaled, min-max-scaled map blended in as
    x = (1 - blend) * x + blend * map (paper: blend 0.5)."""
    x = to_float(images_u8)
    if maps is None or overlay_p <= 0:
        return crop_flip(x, padding, flip, generator)
    n = x.shape[0]
    exponent = log_uniform(n, *power_range, generator).to(x.device)
    scaled = power_minmax(maps.float(), exponent)
    stacked = crop_flip(torch.cat([x, scaled[:, None]], dim=1), padding, flip, generator)
    x, scaled = stacked[:, :3], stacked[:, 3:]
    chosen = (torch.rand(n, generator=generator) < overlay_p).to(x.device)[:, None, None, None]
    return torch.where(chosen, (1 - blend) * x + blend * scaled, x)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - mean) / std

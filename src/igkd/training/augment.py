"""Whole-batch augmentation on the device: crop, flip and the IG overlay.

The attribution map travels through the same crop and flip as the image it is blended
into (the reference code blended an un-transformed map into a transformed image).

Speed: all random draws of a batch come first (always in the same order, so a seed gives
the same batch on any device and in any version of this code that keeps that order);
crop and flip are then one gather on the uint8 batch, and the map is scaled, cropped and
blended only for the rows that get the overlay.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-12
WINDOW_TABLE_MAX = 1 << 22  # int64 entries (32 MiB): bigger images compute their windows per batch


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B,3,H,W) -> float in [0,1]."""
    return images_u8.float().div_(255.0)


@dataclass
class Geometry:
    """One random crop offset and flip decision per image (CPU tensors)."""

    padding: int
    dy: torch.Tensor | None  # (B,) row offset into the padded image, or None without crop
    dx: torch.Tensor | None
    flipped: torch.Tensor | None  # (B,) bool, or None without flip


def draw_geometry(n: int, padding: int, flip: bool, generator: torch.Generator) -> Geometry:
    """Draw crop offsets (uniform in 0..2*padding) and flips (p 0.5) for n images."""
    dy = dx = flipped = None
    if padding > 0:
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
    return Geometry(padding, dy, dx, flipped)


def window_index(geometry: Geometry, height: int, width: int, device) -> torch.Tensor | None:
    """(B, H*W) flat positions, in each image's padded (H+2p, W+2p) plane, of its cropped and
    flipped pixels; None when there is neither crop nor flip."""
    if geometry.dy is None and geometry.flipped is None:
        return None
    pad = _pad(geometry)
    table = _window_table(height, width, pad, torch.device(device))
    if table is None:
        return _compute_windows(geometry, height, width, pad).to(device, non_blocking=True)
    n = len(geometry.dy if geometry.dy is not None else geometry.flipped)
    ids = torch.zeros(n, dtype=torch.int64)
    if geometry.dy is not None:
        ids = geometry.dy * (2 * pad + 1) + geometry.dx
    ids = 2 * ids + (geometry.flipped if geometry.flipped is not None else 0)
    return table.index_select(0, ids.to(device, non_blocking=True))


@functools.lru_cache(maxsize=8)
def _window_table(height: int, width: int, padding: int, device: torch.device) -> torch.Tensor | None:
    """Every possible window, one row per (row offset, column offset, flipped): a batch's
    windows are then one index_select, not a dozen small ops. None when too large."""
    span = 2 * padding + 1
    if span * span * 2 * height * width > WINDOW_TABLE_MAX:
        return None
    offsets = torch.arange(span)
    dy, dx = offsets.repeat_interleave(span), offsets.repeat(span)
    flipped = torch.tensor([False, True])
    geometry = Geometry(padding, dy.repeat_interleave(2), dx.repeat_interleave(2), flipped.repeat(span * span))
    return _compute_windows(geometry, height, width, padding).to(device)


def _compute_windows(geometry: Geometry, height: int, width: int, pad: int) -> torch.Tensor:
    n = len(geometry.dy if geometry.dy is not None else geometry.flipped)
    rows = torch.arange(height).expand(n, height)
    cols = torch.arange(width).expand(n, width)
    if geometry.dy is not None:
        rows = rows + geometry.dy[:, None]
        cols = cols + geometry.dx[:, None]
    if geometry.flipped is not None:
        cols = torch.where(geometry.flipped[:, None], cols.flip(1), cols)
    return (rows[:, :, None] * (width + 2 * pad) + cols[:, None, :]).flatten(1)


def take_windows(batch: torch.Tensor, index: torch.Tensor | None, padding: int) -> torch.Tensor:
    """Gather each image's window (see `window_index`) from its zero-padded copy, all channels at once."""
    if index is None:
        return batch
    n, channels, height, width = batch.shape
    source = F.pad(batch, (padding, padding, padding, padding)) if padding else batch
    out = source.flatten(2).gather(2, index[:, None, :].expand(n, channels, height * width))
    return out.view(n, channels, height, width)


def apply_geometry(batch: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Crop (zero padding) and flip every image of a (B,C,H,W) batch."""
    index = window_index(geometry, batch.shape[2], batch.shape[3], batch.device)
    return take_windows(batch, index, _pad(geometry))


def _pad(geometry: Geometry) -> int:
    return geometry.padding if geometry.dy is not None else 0


def crop_flip(batch: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding) and horizontal flip, drawn per image, applied to all channels.

    Stack the image and its map along channels before calling so both get one transform.
    """
    return apply_geometry(batch, draw_geometry(len(batch), padding, flip, generator))


def power_minmax(maps: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """maps (B,H,W) ** exponent (B,), then each map min-max scaled to [0,1]."""
    powered = maps.clamp_min(0).pow(exponent[:, None, None])
    low, high = powered.flatten(1).aminmax(dim=1)
    low, high = low[:, None, None], high[:, None, None]
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
    overlay_p: float | torch.Tensor,
    power_range: tuple[float, float],
    blend: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The student's input batch in [0,1]: crop + flip, and with probability `overlay_p`
    per image the power-scaled, min-max-scaled map blended in as
    x = (1 - blend) * x + blend * map (paper: blend 0.5), the map cropped and flipped
    with its image. `overlay_p` may be one probability per image (a CPU tensor): the draws
    are the same, so an image with p 0 is never overlaid and the others as with the scalar.

    Draw order per batch: exponents, crop offsets, flips, overlay choices.
    """
    n, _, height, width = images_u8.shape
    if maps is None or float(torch.as_tensor(overlay_p).max()) <= 0:
        return to_float(crop_flip(images_u8, padding, flip, generator))
    exponent = log_uniform(n, *power_range, generator)
    geometry = draw_geometry(n, padding, flip, generator)
    chosen = (torch.rand(n, generator=generator) < overlay_p).nonzero()[:, 0]
    index = window_index(geometry, height, width, images_u8.device)
    x = to_float(take_windows(images_u8, index, _pad(geometry)))
    if len(chosen):
        rows = chosen.to(x.device, non_blocking=True)
        scaled = power_minmax(maps.index_select(0, rows).float(), exponent[chosen].to(x.device, non_blocking=True))
        window = None if index is None else index.index_select(0, rows)
        scaled = take_windows(scaled[:, None], window, _pad(geometry))
        x.index_copy_(0, rows, (1 - blend) * x.index_select(0, rows) + blend * scaled)
    return x


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean) / std per channel; the (1,3,1,1) statistics are built once per
    (values, dtype, device), not on every call (on CUDA each build is two blocking
    host-to-device copies: per training step, evaluation batch and precompute batch)."""
    mean_t, std_t = _channel_stats(tuple(map(float, mean)), tuple(map(float, std)), x.dtype, x.device)
    return (x - mean_t) / std_t


@dataclass(frozen=True)
class InputNorm:
    """A model's input normalisation: per-channel mean and std, or none ([0,1] inputs).

    The teacher's comes from its metrics.json, a student's from students.normalize; both
    are applied the same way by training, evaluation and attribution."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_config(cls, section: dict | None) -> InputNorm:
        """From a config's `normalize` entry: null, or {mean: [3], std: [3]}."""
        if not section:
            return cls()
        return cls(tuple(section["mean"]), tuple(section["std"]))

    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 if self.mean is None else normalize(x01, self.mean, self.std)

    def prepare(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,H,W) -> the model's input."""
        return self(to_float(images_u8))


@functools.lru_cache(maxsize=64)
def _channel_stats(mean: tuple, std: tuple, dtype: torch.dtype, device: torch.device):
    shape = (1, len(mean), 1, 1)
    return (
        torch.tensor(mean, dtype=dtype, device=device).view(shape),
        torch.tensor(std, dtype=dtype, device=device).view(shape),
    )

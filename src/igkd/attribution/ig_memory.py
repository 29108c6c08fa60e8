"""How many interpolation points one attribution pass may hold: `internal_batch_size: auto`.

Captum's IG runs `steps x batch` forward/backward passes in chunks of
`internal_batch_size` points; each point keeps the teacher's activations for the
backward pass (about 13 MiB for the width-1.0 CIFAR teacher at 32x32). A fixed 1024
needs ~13 GiB: fine on an 80 GiB GPU, out of memory on a 16 GiB card or when several
precomputes share a GPU. `auto` sizes the chunk from the memory free right now
(`torch.cuda.mem_get_info` on CUDA, available RAM elsewhere) and the per-point cost
counted from one forward pass; a pass that still runs out of memory is retried with
half the points (`attribute_with_retry`). Results equal to float rounding whatever the
chunk (each point's gradient is computed on its own).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from igkd.io import InputError

AUTO = "auto"
AUTO_MAX_POINTS = 1024  # never more per pass: beyond this the passes are long enough to be efficient
MEMORY_SHARE = 0.5  # of the free memory: room for the allocator's fragmentation and other jobs
BYTES_PER_ACTIVATION = 2  # each saved activation also gets a gradient buffer in the backward pass


def activation_bytes_per_point(model: nn.Module, image_shape: tuple[int, int], device: str) -> int:
    """Bytes of the activations one input image produces in `model` (outputs of every leaf
    module, counted by hooks on one forward pass), times BYTES_PER_ACTIVATION."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, *image_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return max(total * BYTES_PER_ACTIVATION, 1)


def free_bytes(device: str) -> int:
    """Memory free for this job now: the GPU's free memory, or the machine's available RAM."""
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def choose_internal_batch(
    setting, points_per_call: int, model: nn.Module, image_shape: tuple[int, int], device: str, log: Callable
) -> int | None:
    """The configured `internal_batch_size`, or for `auto` the number of points that fit
    in MEMORY_SHARE of the free memory (at least 1, at most AUTO_MAX_POINTS and
    `points_per_call`, the points one attribution call has)."""
    if setting != AUTO:
        return setting
    per_point = activation_bytes_per_point(model, image_shape, device)
    free = free_bytes(device)
    fits = int(MEMORY_SHARE * free // per_point)
    chosen = max(1, min(AUTO_MAX_POINTS, points_per_call, fits))
    log(
        f"precompute: internal_batch_size auto -> {chosen} points per pass (~{per_point / 2**20:.2f} MiB "
        f"per point, {free / 2**30:.1f} GiB free on {device})"
    )
    return chosen


def attribute_with_retry(call: Callable[[int | None], tuple], internal_batch: int | None, points: int, log: Callable):
    """`call(internal_batch)`; on CUDA out-of-memory, again with half the points per pass.

    Returns (result, the internal batch that worked) so the caller keeps using it."""
    while True:
        try:
            return call(internal_batch), internal_batch
        except torch.OutOfMemoryError as err:
            current = internal_batch or points
            if current <= 1:
                raise InputError(
                    f"precompute: out of GPU memory even at 1 interpolation point per pass ({err}); "
                    f"free the GPU or lower precompute.batch_size"
                ) from err
            internal_batch = max(1, current // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log(f"precompute: out of GPU memory at {current} points per pass; retrying with {internal_batch}")

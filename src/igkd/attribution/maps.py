"""Per-image attribution maps from the teacher (captum); the methods are listed in igkd.registry.

The contract of an attribution (igkd's own here, a plugin's through igkd.register; docs/extending.md "Attributions"):

    fn(model, x, target, settings) -> (attr, delta)

- `x`: the batch normalised as the teacher sees it, (B,3,H,W); `target`: int64 (B,), the class attributed;
- `settings`: the method's settings (config precompute.<name>; a plugin's registered defaults merged with
  precompute.plugin_settings.<name>), plus what the caller adds: `generator` (a seeded torch.Generator),
  and in the precompute `internal_batch_size` and `endpoint_gain` (f_t(x) - f_t(0) per image);
- `attr`: (B,C,H,W) at the input's resolution, or (B,C,h,w) / (B,h,w) at a layer's lower resolution;
- `delta`: (B,) the completeness error attr.sum - (f(x) - f(baseline)) where the method has one, NaN otherwise.

`to_map(attr, (H,W))` turns any of those into one (B,H,W) map: the sum of |attr| over channels (the
paper's map, unchanged for full-resolution attributions) and, at a lower resolution, bilinear
upsampling to the input's (H,W): the framework does it, not the method.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from captum.attr import GradientShap, IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from igkd import registry
from igkd.attribution import completeness, converged_ig
from igkd.io import InputError

Attributor = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, dict], tuple[torch.Tensor, torch.Tensor]]


def inference_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy with every BatchNorm that follows a conv folded into it.

    Same function (to float rounding), fewer passes over the activations, and no weight
    gradients to track: about 1.4x faster IG on CPU. The caller's model is untouched.
    """
    model = copy.deepcopy(model).eval().requires_grad_(False)
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats:
                    module[i] = fuse_conv_bn_eval(conv, norm).requires_grad_(False)
                    module[i + 1] = nn.Identity()
    if getattr(model, "channels_last", False):  # folded weights are new tensors: restore the layout
        model.use_channels_last(True)
    return model


def integrated_gradients(model, x, target, settings):
    """IG from a zero baseline (zeros in normalised space, as in the paper).

    With `settings["endpoint_gain"]` = f_target(x) - f_target(0) per image (the caller
    already has the logits), the completeness error is computed from it instead of by
    captum's two extra forward passes; the formula is captum's.
    """
    if settings.get("method") == converged_ig.QUADRATURE:  # igkd's nested trapezoid, refined per image
        return _converged(model, x, target, settings)
    ig = IntegratedGradients(model)
    gain = settings.get("endpoint_gain")
    result = ig.attribute(
        x,
        baselines=torch.zeros_like(x),
        target=target,
        n_steps=settings["steps"],
        method=settings.get("method", "gausslegendre"),
        internal_batch_size=_points_per_pass(settings),
        return_convergence_delta=gain is None,
    )
    if gain is None:
        return result
    return result, result.flatten(1).sum(1) - gain


def _converged(model, x, target, settings):
    """`method: trapezoid`: converged_ig with the settings' steps, tolerance and max_steps
    (the gain from two forward passes where the caller has no logits)."""
    gain = settings.get("endpoint_gain")
    if gain is None:
        with torch.no_grad():
            gain = (model(x) - model(torch.zeros_like(x[:1]))).gather(1, target_index_of(target, x)[:, None])[:, 0]
    floor = settings.get("rel_floor", completeness.DEFAULT_REL_FLOOR)
    refinement = converged_ig.Refinement.from_settings(settings, floor)
    result = converged_ig.refined_ig(model, x, target_index_of(target, x), gain, refinement, _points_per_pass(settings))
    return result.attr, result.delta


def target_index_of(target, x: torch.Tensor) -> torch.Tensor:
    """One int64 class per image, from an int or a (B,) tensor."""
    return torch.as_tensor(target, device=x.device).expand(len(x))


def _points_per_pass(settings) -> int | None:
    """captum's internal_batch_size; `auto` (resolved from free memory by the precompute,
    igkd.attribution.ig_memory) means all points in one pass for the few images a figure attributes."""
    value = settings.get("internal_batch_size")
    return None if value == "auto" else value


def saliency(model, x, target, settings):
    attr = Saliency(model).attribute(x, target=target, abs=True)
    return attr, _no_delta(x)


def smoothgrad(model, x, target, settings):
    tunnel = NoiseTunnel(Saliency(model))
    attr = tunnel.attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=settings.get("samples", 16),
        nt_samples_batch_size=settings.get("internal_batch_size"),
        stdevs=settings.get("noise_sd", 0.15),
        target=target,
        abs=True,
    )
    return attr, _no_delta(x)


def gradient_shap(model, x, target, settings):
    baselines = torch.zeros((2,) + tuple(x.shape[1:]), device=x.device)
    attr = GradientShap(model).attribute(
        x,
        baselines=baselines,
        n_samples=settings.get("samples", 16),
        stdevs=settings.get("noise_sd", 0.15),
        target=target,
    )
    return attr, _no_delta(x)


def _no_delta(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float("nan"), device=x.device)


def grad_cam(model, x, target, settings):
    """Grad-CAM (captum LayerGradCam, ReLU'd) at the teacher's module `settings["layer"]`
    (config precompute.gradcam.layer): (B,1,h,w) at that layer's resolution (to_map upsamples)."""
    layer = _layer(model, settings.get("layer"))
    attr = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True).detach()
    if attr.dim() != 4:
        raise InputError(
            f"precompute.gradcam.layer: {settings['layer']!r} gives {tuple(attr.shape)}, not a spatial (B,C,h,w) "
            f"output; name a feature block, e.g. {_layer_examples(model)}"
        )
    return attr, _no_delta(x)


def _layer(model: nn.Module, name) -> nn.Module:
    """The module `name` of the teacher, or a one-line InputError with a few valid names.
    The precompute's inference_copy keeps every module name (a folded BatchNorm becomes nn.Identity)."""
    if not name:
        raise InputError(
            f"precompute.gradcam.layer: not set; name a module of the teacher, e.g. {_layer_examples(model)}"
        )
    try:
        return model.get_submodule(str(name))
    except AttributeError:
        raise InputError(
            f"precompute.gradcam.layer: {name!r} is not a module of the teacher; expected e.g. {_layer_examples(model)}"
        ) from None


def _layer_examples(model: nn.Module) -> str:
    """A few module names Grad-CAM can explain: the blocks (one level below the top) that hold a conv."""
    names = [
        n for n, m in model.named_modules() if n.count(".") == 1 and any(isinstance(c, nn.Conv2d) for c in m.modules())
    ]
    if len(names) > 4:
        names = [*names[:2], "...", names[-1]]
    return ", ".join(names) or ", ".join(n for n, _ in model.named_children())


def attributor(name: str) -> Attributor:
    """The function of attribution `name` (igkd.registry; ValueError naming the known ones if unknown)."""
    return registry.resolve(registry.attribution(name).fn)


def to_map(attr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Attributions -> (B,H,W) maps at the input's `size` = (H,W).

    (B,C,h,w): sum over channels of |attribution| (the paper's map; (B,3,H,W) input
    attributions are unchanged by the rest); (B,h,w): |attribution|. Below the input's
    resolution the map is upsampled bilinearly (align_corners=False) to (H,W)."""
    size = (int(size[0]), int(size[1]))
    if attr.dim() == 4:
        maps = attr.abs().sum(1)
    elif attr.dim() == 3:
        maps = attr.abs()
    else:
        raise InputError(f"attribution of shape {tuple(attr.shape)}: expected (B,C,H,W), (B,C,h,w) or (B,h,w)")
    here = tuple(maps.shape[1:])
    if here == size:
        return maps
    if here[0] > size[0] or here[1] > size[1]:
        raise InputError(f"attribution of shape {tuple(attr.shape)}: larger than the input's {size}")
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]

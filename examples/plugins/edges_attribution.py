"""An attribution in one file: |gradient x input| pooled over cells of `cell` pixels.

Its maps are coarser than the image (cell x cell blocks): the framework upsamples them to
the image, as it does Grad-CAM's. Config: `plugins: [edges_attribution.py]`, then
`edges` in precompute.attributions or figures.attributions.methods, or a method
`IG@edges` / `KD_IG@edges` whose overlay uses it (docs/extending.md).
"""

import torch
import torch.nn.functional as F

from igkd import register


@register.attribution("edges", defaults={"cell": 2})
def edges(model, x, target, settings):
    """(B,3,H/cell,W/cell) pooled |gradient x input| of the target logit; no completeness."""
    x = x.detach().requires_grad_(True)
    target = torch.as_tensor(target, device=x.device).expand(len(x))
    picked = model(x).gather(1, target[:, None]).sum()
    (gradient,) = torch.autograd.grad(picked, x)
    attr = F.avg_pool2d((gradient * x).abs(), settings["cell"])
    return attr.detach(), torch.full((len(x),), float("nan"), device=x.device)

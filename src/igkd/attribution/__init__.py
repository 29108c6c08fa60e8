"""Attribution: teacher logits and attribution maps per training image (the precompute stage)."""

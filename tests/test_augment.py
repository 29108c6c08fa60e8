import torch

from igkd.augment import augment_batch, crop_flip, power_minmax


def coordinate_images(n=16, size=12):
    """Channel 0 encodes each pixel's position, so any crop/flip is visible in the values."""
    grid = torch.arange(size * size, dtype=torch.float32).reshape(size, size) + 1
    return grid.expand(n, 3, size, size).clone()


def test_map_gets_same_crop_and_flip_as_image():
    images = coordinate_images()
    maps = images[:, 0].clone() * 2  # a map that is a known function of the pixel
    stacked = crop_flip(torch.cat([images, maps[:, None]], 1), 3, True, torch.Generator().manual_seed(0))
    assert torch.equal(stacked[:, 3], stacked[:, 0] * 2)
    # and it really did move pixels around for some images
    assert not torch.equal(stacked[:, 0], images[:, 0])


def test_crop_is_a_shifted_window_with_zero_padding():
    images = coordinate_images(n=64, size=8)
    out = crop_flip(images, 2, False, torch.Generator().manual_seed(1))
    for img in out[:, 0]:
        nonzero = img[img > 0]
        # rows of a shifted window stay consecutive runs of the original grid
        assert nonzero.numel() >= 36
        assert set(nonzero.long().tolist()) <= set(range(1, 65))


def test_overlay_probability_zero_and_one():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    maps = torch.rand(32, 8, 8)
    kw = dict(padding=0, flip=False, power_range=(1.0, 1.0), blend=0.5)
    plain = augment_batch(images, maps, overlay_p=0.0, generator=gen(), **kw)
    assert torch.allclose(plain, images.float() / 255)
    blended = augment_batch(images, maps, overlay_p=1.0, generator=gen(), **kw)
    scaled = power_minmax(maps, torch.ones(32))
    assert torch.allclose(blended, 0.5 * images.float() / 255 + 0.5 * scaled[:, None], atol=1e-6)


def test_overlay_rate_matches_p():
    images = torch.zeros(4000, 3, 4, 4, dtype=torch.uint8)
    maps = torch.rand(4000, 4, 4) + 0.1
    out = augment_batch(
        images, maps, padding=0, flip=False, overlay_p=0.1, power_range=(1.0, 2.0), blend=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    rate = (out.flatten(1).amax(1) > 0).float().mean().item()
    assert 0.08 < rate < 0.12


def test_power_minmax_range_and_order():
    maps = torch.rand(5, 6, 6)
    out = power_minmax(maps, torch.tensor([1.0, 1.2, 1.5, 1.8, 2.0]))
    assert torch.allclose(out.flatten(1).amin(1), torch.zeros(5))
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(5))
    # a monotone transform keeps the order of pixels
    assert torch.equal(out[2].flatten().argsort(), maps[2].flatten().argsort())

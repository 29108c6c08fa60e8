import numpy as np
import torch

from igkd.training.augment import augment_batch, crop_flip, power_minmax


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
        images,
        maps,
        padding=0,
        flip=False,
        overlay_p=0.1,
        power_range=(1.0, 2.0),
        blend=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    rate = (out.flatten(1).amax(1) > 0).float().mean().item()
    assert 0.08 < rate < 0.12  # 4.2 binomial sd (n 4000, p 0.1) either side: holds for any fair stream of draws


def test_power_minmax_range_and_order():
    maps = torch.rand(5, 6, 6)
    out = power_minmax(maps, torch.tensor([1.0, 1.2, 1.5, 1.8, 2.0]))
    assert torch.allclose(out.flatten(1).amin(1), torch.zeros(5))
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(5))
    # a monotone transform keeps the order of pixels
    assert torch.equal(out[2].flatten().argsort(), maps[2].flatten().argsort())


def per_image_reference(images_u8, maps, *, padding, flip, overlay_p, power_range, blend, generator):
    """The overlay augmentation written one image at a time, from the same draws in the same
    order (exponents, crop rows, crop columns, flips, overlay choices)."""
    from igkd.training.augment import log_uniform

    n, _, height, width = images_u8.shape
    exponent = log_uniform(n, *power_range, generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flipped = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    chosen = torch.rand(n, generator=generator) < overlay_p
    out = []
    for i in range(n):
        image = images_u8[i].float() / 255
        scaled = maps[i].clamp_min(0) ** exponent[i]
        scaled = (scaled - scaled.min()) / (scaled.max() - scaled.min()).clamp_min(1e-12)
        stacked = torch.nn.functional.pad(torch.cat([image, scaled[None]]), (padding,) * 4)
        stacked = stacked[:, dy[i] : dy[i] + height, dx[i] : dx[i] + width]
        if flipped[i]:
            stacked = stacked.flip(2)
        image, scaled = stacked[:3], stacked[3:]
        out.append((1 - blend) * image + blend * scaled if chosen[i] else image)
    return torch.stack(out)


def test_batched_augmentation_equals_the_per_image_version():
    """Exact equality: the batched gather, the overlay on chosen rows only and the draw
    order reproduce the straightforward per-image computation bit for bit."""
    gen = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (48, 3, 10, 10), dtype=torch.uint8, generator=gen)
    maps = torch.rand(48, 10, 10, generator=gen) * 2 - 0.2
    for flip, p in ((True, 0.3), (False, 1.0), (True, 0.0)):
        kw = dict(padding=3, flip=flip, overlay_p=p, power_range=(1.0, 2.0), blend=0.5)
        batched = augment_batch(images, maps, generator=torch.Generator().manual_seed(9), **kw)
        if p == 0.0:  # no overlay: only crop and flip are drawn
            plain = crop_flip(images.float() / 255, 3, flip, torch.Generator().manual_seed(9))
            assert torch.equal(batched, plain)
            continue
        expected = per_image_reference(images, maps, generator=torch.Generator().manual_seed(9), **kw)
        assert torch.equal(batched, expected)


def test_crop_flip_without_padding_only_flips():
    images = coordinate_images(n=32, size=6)
    out = crop_flip(images, 0, True, torch.Generator().manual_seed(2))
    flipped = [not torch.equal(o, i) for o, i in zip(out, images)]
    assert 5 < sum(flipped) < 27  # 16 +- 3.9 binomial sd (n 32, p 0.5): any fair stream of draws
    for o, i, f in zip(out, images, flipped):
        assert torch.equal(o, i.flip(2) if f else i)
    assert torch.equal(crop_flip(images, 0, False, torch.Generator()), images)


def test_window_table_and_computed_windows_agree(monkeypatch):
    """Small images take their windows from a cached table, large ones compute them: same result."""
    import igkd.training.augment as augment

    images = torch.randint(0, 256, (40, 3, 9, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    maps = torch.rand(40, 9, 7, generator=torch.Generator().manual_seed(5))
    outputs = []
    for table_max in (augment.WINDOW_TABLE_MAX, 0):
        monkeypatch.setattr(augment, "WINDOW_TABLE_MAX", table_max)
        augment._window_table.cache_clear()
        for padding, flip in ((2, True), (0, True), (3, False)):
            kw = dict(padding=padding, flip=flip, overlay_p=0.5, power_range=(1.0, 2.0), blend=0.5)
            outputs.append(augment_batch(images, maps, generator=torch.Generator().manual_seed(padding), **kw))
        assert (augment._window_table(9, 7, 2, torch.device("cpu")) is None) == (table_max == 0)
    augment._window_table.cache_clear()
    for with_table, computed in zip(outputs[:3], outputs[3:]):
        assert torch.equal(with_table, computed)


def test_normalize_builds_its_statistics_once_and_matches_the_formula():
    from igkd.training.augment import _channel_stats, normalize

    mean, std = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]
    x = torch.rand(4, 3, 8, 8)
    expected = (x - torch.as_tensor(mean)[None, :, None, None]) / torch.as_tensor(std)[None, :, None, None]
    _channel_stats.cache_clear()
    assert torch.equal(normalize(x, mean, std), expected)
    assert torch.equal(normalize(x, tuple(mean), std), expected)
    info = _channel_stats.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # on CUDA: no host-to-device copy per call after the first
    assert torch.equal(normalize(x, np.asarray(mean, dtype=np.float32), std), expected)  # data attrs are float32

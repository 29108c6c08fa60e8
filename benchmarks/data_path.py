"""Data path throughput: the reference code's per-image PIL + DataLoader path vs igkd's batched path.

Both produce the student's input batch (crop 32 with padding 4, horizontal flip, and with
probability p the power-scaled, min-max-scaled IG map blended in), model excluded.

- reference: a Dataset whose __getitem__ runs torchvision's RandomCrop(32, padding=4),
  RandomHorizontalFlip and ToTensor on one PIL image, then blends that image's IG map
  (power, min-max, blend in numpy), batched by a torch DataLoader with worker processes.
  Workers are persistent and started during warm-up, so their start-up is not timed
  (in the reference's favour).
- igkd: the training set as one uint8 tensor (N,3,H,W) and the maps as one float tensor,
  indexed by a random permutation; igkd.training.augment.augment_batch on whole batches.

Images and maps are random (uint8 / float32 noise of CIFAR's shape): throughput does not
depend on the content. Run: `.venv/bin/python benchmarks/data_path.py [--images 20000]`.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from _common import children_peak_mb, format_table, machine_line, run_interleaved, setup, sync
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from igkd.training.augment import augment_batch


class ReferenceDataset(Dataset):
    """One image at a time, as the reference code's CIFAR10WithIG dataset does: PIL image
    through the transforms, then for every image the map is power-scaled (random exponent),
    min-max scaled and copied to 3 channels, and blended with probability p (the map is not
    cropped or flipped with its image there: defect 2 in docs/reference-defects.md)."""

    def __init__(self, images_nhwc, labels, maps, logits, *, size, padding, p, power_range, blend):
        self.images, self.labels, self.logits = images_nhwc, labels, torch.as_tensor(logits)
        self.maps = torch.as_tensor(maps)[:, None]  # (N,1,H,W), as the reference holds them
        self.transform = transforms.Compose(
            [transforms.RandomCrop(size, padding=padding), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )
        self.p, self.power_range, self.blend = p, power_range, blend

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.transform(Image.fromarray(self.images[index]))
        low, high = (math.log(v) for v in self.power_range)
        ig = self.maps[index] ** float(np.exp(np.random.uniform(low, high)))
        ig = (ig - ig.min()) / (ig.max() - ig.min())
        ig = ig.repeat(1, 3, 1, 1).squeeze(0)
        if np.random.rand() < self.p:
            image = (1 - self.blend) * image + self.blend * ig
        return image, self.labels[index], self.logits[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="images per pass (one repeat of the reference)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64, help="the paper's student batch")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference (2 cores here)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of igkd's path (batches of small ops: 1 is fastest here)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda: where igkd's batches are made")
    parser.add_argument("--p", type=float, default=0.1, help="overlay probability (paper 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = setup(args.threads, args.device)
    padding, power_range, blend = 4, (1.0, 2.0), 0.5

    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images)
    maps = rng.random((args.images, args.size, args.size), dtype=np.float32)
    logits = rng.normal(size=(args.images, 10)).astype(np.float32)

    # reference: per-image PIL + torchvision in DataLoader workers
    dataset = ReferenceDataset(
        images, labels, maps, logits, size=args.size, padding=padding, p=args.p, power_range=power_range, blend=blend
    )
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.startswith("cuda"),
    )

    def reference(_repeat: int) -> int:
        seen = 0
        for x, _, _ in loader:  # noqa: F821 - bound before the first call; deleted only after the last
            x = x.to(device, non_blocking=True)
            seen += len(x)
        return seen

    # igkd: one uint8 tensor on the device, whole-batch ops
    images_t = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    maps_t = torch.from_numpy(maps).to(device)
    generator = torch.Generator().manual_seed(args.seed)

    def ours(_repeat: int) -> int:
        order = torch.randperm(args.images, generator=generator).to(device)
        for lo in range(0, args.images, args.batch_size):
            rows = order[lo : lo + args.batch_size]
            augment_batch(  # as igkd.training.student's step
                images_t.index_select(0, rows),
                maps_t.index_select(0, rows),
                padding=padding,
                flip=True,
                overlay_p=args.p,
                power_range=power_range,
                blend=blend,
                generator=generator,
            )
        return args.images

    print(machine_line(device, args.threads))
    print(
        f"{args.images} random uint8 images {args.size}x{args.size}x3 + float32 maps, batch {args.batch_size}, "
        f"crop pad {padding} + flip + overlay p {args.p}; {args.repeats} repeats after {args.warmup} warm-up"
    )
    results = run_interleaved(
        {"reference (PIL + DataLoader)": reference, "igkd (batched tensors)": ours},
        repeats=args.repeats,
        warmup=args.warmup,
        device=device,
        min_seconds=1.0,
    )
    del loader  # joins the workers, so their peak memory can be read
    workers_peak = children_peak_mb()
    sync(device)
    ref_rate = results["reference (PIL + DataLoader)"]["median"]
    ref_cpu_rate = results["reference (PIL + DataLoader)"]["cpu_median"]
    rows = []
    for name, result in results.items():
        row = {
            "path": name,
            "images/s (median)": result["median"],
            "min": result["low"],
            "max": result["high"],
            "x reference": result["median"] / ref_rate,
            "images/CPU-s": result["cpu_median"],
            "x reference (CPU)": result["cpu_median"] / ref_cpu_rate,
            **result["peak"],
        }
        rows.append(row)
    rows[0]["workers_peak_rss_mb"] = workers_peak
    columns = ["path", "images/s (median)", "min", "max", "x reference", "images/CPU-s", "x reference (CPU)"]
    columns += [*results[name]["peak"], "workers_peak_rss_mb"]
    print(format_table(rows, columns))
    print(
        f"reference: {args.workers} DataLoader workers (each peak RSS {workers_peak:.0f} MB at most); "
        f"igkd: {args.threads} torch threads in the main process, data on {device}"
    )


if __name__ == "__main__":
    main()

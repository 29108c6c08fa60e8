"""Which calibration file serves the run's device, and whether it can be measured here.

On the machine that will run the jobs the device is resolved (auto as the jobs resolve
it), identified, and its own file is used and filled. Planning for a device this
machine does not have (a GPU run, planned on a login node) can only reuse numbers
measured elsewhere: the newest file for that device type, copied here from a machine
that has the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from igkd.io import InputError
from igkd.plan.calibration import CACHE_DIR, Store
from igkd.plan.device import available, check_device, describe, device_kind, resolve_device


@dataclass(frozen=True)
class DeviceCache:
    store: Store
    where: dict  # hostname, device, device_name, torch of new entries
    kind: str  # cpu | cuda | mps
    can_measure: bool
    why_not: str = ""


def open_cache(requested: str, root: Path | None = None) -> DeviceCache:
    """The cache for `requested` (auto | cpu | cuda | cuda:<k> | mps) under `root`/.igkd/calibration."""
    folder = (root or Path.cwd()) / CACHE_DIR
    check_device(requested)
    if requested == "auto" or available(requested):
        info = describe(resolve_device(requested))
        return DeviceCache(Store(folder / f"{info.cache_stem}.json", info.where()), info.where(), info.kind, True)
    kind = device_kind(requested)
    files = sorted(folder.glob(f"{kind}-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise InputError(
            f"device {requested}: not on this machine and no calibration for it in {folder}; run "
            f"`igkd calibrate --device {requested}` with the run's arguments where the device is, "
            f"and copy {CACHE_DIR}/{kind}-*.json here"
        )
    store = Store(files[-1])
    where = {**store.device, "device": requested}
    return DeviceCache(store, where, kind, False, f"no {requested} on this machine")

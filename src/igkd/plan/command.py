"""`igkd plan` and `igkd calibrate`: from parsed arguments to printed output.

The argument definitions live with the other sub-commands in igkd.cli; this module turns
them into a RunSpec, runs the plan or the calibration and prints the result.
"""

from __future__ import annotations

import json

from igkd.plan.runspec import RunSpec


def plan_command(args) -> None:
    from igkd.plan.build import Options, make_plan
    from igkd.plan.report import as_json, text

    slurm = bool(args.slurm_runtimes or args.write_slurm_profile)
    plan = make_plan(RunSpec.from_args(args), Options(recalibrate=args.recalibrate, memory=slurm))
    if args.json:
        data = as_json(plan)
        if slurm:
            data["slurm"] = _slurm(plan, args, quiet=True)
        print(json.dumps(data, indent=1))
        return
    print(text(plan))
    if slurm:
        _slurm(plan, args, quiet=False)


def _slurm(plan, args, *, quiet: bool) -> dict:
    """Print (unless quiet) and return the SLURM runtimes; write them into a profile if asked."""
    from igkd.plan.runspec import read_profile
    from igkd.plan.slurm import current_resources, profile_file, runtime_lines, runtimes, write_profile

    target = args.write_slurm_profile
    profile = read_profile(profile_file(target)) if target else plan.run.profile
    items = runtimes(plan.rules, profile)
    out = {
        "runtimes": {
            r.rule: {"minutes": r.minutes, "group": r.group, "limit": r.limit, "mem_mb": r.mem_mb} for r in items
        }
    }
    if not quiet:
        print()
        print(f"sized for {plan.cache.where.get('device')} ({plan.cache.where.get('device_name')})")
        print("\n".join(runtime_lines(items)))
    if target:
        changes = write_profile(target, items, current_resources(f.job for f in plan.figures))
        out["written"] = {"profile": str(profile_file(target)), "changes": changes}
        if not quiet:
            print(f"\nwrote {profile_file(target)}:" if changes else f"\n{profile_file(target)}: nothing to change")
            print("\n".join(f"  {c}" for c in changes))
    return out


def calibrate_command(args) -> None:
    from igkd.plan.build import Options, run_calibration
    from igkd.plan.calibration import provenance

    cache, calibration = run_calibration(RunSpec.from_args(args), Options(recalibrate=args.recalibrate))
    for entry in calibration.entries.values():
        print(f"{entry.value:>14.6g} {entry.key.unit:<9} {entry.key.label()}")
    print(f"calibration {cache.store.path}:")
    for line in provenance(calibration):
        print(f"  {line}")

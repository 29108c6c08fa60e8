"""Every comparison's power, runs needed and hours (one family per tested experiment, and
the controls where on) -> stats/power.csv."""

import pandas as pd

from igkd.analysis.collect import run_costs
from igkd.analysis.power import Family, PowerPlan, write_power
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
inputs = snakemake.input
families = [
    Family(
        name,
        pd.read_csv(inputs[f"{name}_comparisons"]),
        pd.read_csv(inputs[f"{name}_runs"]),
        run_costs(inputs[f"{name}_runtime"]),
    )
    for name in snakemake.params.families
]
if hasattr(inputs, "controls_runs"):  # Namedlist: `in` would search the values
    controls = Family(
        "controls",
        pd.read_csv(inputs.controls_comparisons),
        pd.read_csv(inputs.controls_runs),
        run_costs(inputs.controls_runtime),
    )
    families.append(controls)
table = write_power(families, PowerPlan.from_config(snakemake.params.stats), snakemake.output.power)
log(table.to_string(index=False))

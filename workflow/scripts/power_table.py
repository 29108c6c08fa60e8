"""Every comparison's power, runs needed and hours (methods, and the controls where on) -> stats/power.csv."""

import pandas as pd

from igkd.analysis.collect import run_costs
from igkd.analysis.power import Family, PowerPlan, write_power
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
inputs = snakemake.input
families = [Family("methods", pd.read_csv(inputs.comparisons), pd.read_csv(inputs.runs), run_costs(inputs.runtime))]
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

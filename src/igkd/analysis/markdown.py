"""Tables as GitHub Markdown, with p-values kept legible (stats.md, controls.md, the power section)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def _is_p_column(name: str) -> bool:
    return name == "p" or name.startswith("p_")


def to_markdown(frame: pd.DataFrame, floatfmt: str = ".2f", formats: Mapping[str, str] | None = None) -> str:
    """Render `frame` as a GitHub Markdown table.

    Floats use `floatfmt`; p-value columns (``p``, ``p_*``) use 3 significant digits
    (``{:.3g}``) so small p-values are not rounded to 0.00. `formats` maps a column name to
    a ``str.format`` pattern that overrides both. NaN/NA render as empty cells. Cells are
    pre-formatted here and tabulate's number parsing is off, so it cannot re-round them.
    """
    formats = dict(formats or {})
    cells = pd.DataFrame(index=frame.index)
    align = []
    for name in frame.columns:
        col = frame[name]
        if name in formats:
            fmt = formats[name]
        elif _is_p_column(str(name)):
            fmt = "{:.3g}"
        elif pd.api.types.is_float_dtype(col):
            fmt = "{:" + floatfmt + "}"
        else:
            fmt = "{}"
        cells[name] = [("" if _isna(v) else fmt.format(v)) for v in col.tolist()]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        align.append("right" if numeric else "left")
    return cells.to_markdown(index=False, tablefmt="github", disable_numparse=True, colalign=align or None)


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False

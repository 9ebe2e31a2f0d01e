"""The loss log of a run: ``log.csv`` (one row per logged step) and ``loss.png`` (its plot).

On resume the CSV is cut back to the checkpoint's step, so a resumed run's log reads as if the
run had never stopped.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


class LossLog:
    """Rows of ``step`` + named values; empty cells where a value was not measured at that step."""

    def __init__(self, folder: Path, resume_step: int = 0):
        self.csv = folder / "log.csv"
        self.png = folder / "loss.png"
        self.rows: list[dict[str, float]] = []
        if resume_step and self.csv.is_file():
            table = pd.read_csv(self.csv)
            self.rows = [
                {k: v for k, v in row.items() if pd.notna(v)}
                for row in table[table["step"] <= resume_step].to_dict("records")
            ]

    def add(self, step: int, **values: float) -> None:
        """Record values at ``step`` (merged into that step's row when it already has one)."""
        if not self.rows or self.rows[-1]["step"] != step:
            self.rows.append({"step": step})
        self.rows[-1].update({k: float(v) for k, v in values.items()})

    def last(self, column: str) -> float | None:
        for row in reversed(self.rows):
            if column in row:
                return row[column]
        return None

    def first(self, column: str) -> float | None:
        return next((row[column] for row in self.rows if column in row), None)

    def save(self) -> None:
        """Rewrite the CSV and the plot (cheap: called at log and checkpoint steps only)."""
        if not self.rows:
            return
        table = pd.DataFrame(self.rows)
        table.to_csv(self.csv, index=False)
        self._plot(table)

    def _plot(self, table: pd.DataFrame) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        columns = [c for c in table.columns if c.startswith(("loss", "eval"))]
        fig, ax = plt.subplots(figsize=(7, 4))
        for column in columns:
            series = table[["step", column]].dropna()
            style = "o-" if column.startswith("eval") else "-"
            ax.plot(series["step"], series[column], style, label=column, markersize=3)
        ax.set_xlabel("step")
        ax.set_yscale("log" if table[columns].min().min() > 0 else "linear")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.png, dpi=100)
        plt.close(fig)

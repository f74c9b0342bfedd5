"""Draw the layout of the four Grafana dashboards (docs/images/dashboard_layout.png).

Reads the provisioned dashboard JSON (docker/grafana/dashboards) and draws every panel at its grid
position, coloured by datasource, so the picture always matches the real dashboards::

    python docs/images/render_dashboard_layout.py
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "docker/grafana/dashboards"
OUT = Path(__file__).resolve().parent / "dashboard_layout.png"
ORDER = ("system", "trading", "risk", "market")
COLOURS = {"prometheus": "#f4a261", "influxdb": "#8ecae6", "grafana-postgresql-datasource": "#b7e4c7"}
LABELS = {
    "prometheus": "Prometheus",
    "influxdb": "InfluxDB (Flux)",
    "grafana-postgresql-datasource": "TimescaleDB (SQL)",
}


def main() -> int:
    """Render the figure."""
    fig, axes = plt.subplots(2, 2, figsize=(16, 12))
    for ax, name in zip(axes.flat, ORDER, strict=True):
        board = json.loads((DASHBOARDS / f"{name}.json").read_text(encoding="utf-8"))
        height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
        for panel in board["panels"]:
            pos = panel["gridPos"]
            colour = COLOURS.get(panel["datasource"]["type"], "#dddddd")
            ax.add_patch(
                Rectangle(
                    (pos["x"] + 0.15, pos["y"] + 0.15),
                    pos["w"] - 0.3,
                    pos["h"] - 0.3,
                    facecolor=colour,
                    edgecolor="#333333",
                    linewidth=0.8,
                )
            )
            width_chars = max(12, int(pos["w"] * 2.2))
            kind = "" if panel["type"] == "timeseries" else f" [{panel['type']}]"
            title = "\n".join(textwrap.wrap(panel["title"] + kind, width_chars)[: max(2, pos["h"] // 2)])
            ax.text(
                pos["x"] + pos["w"] / 2,
                pos["y"] + pos["h"] / 2,
                title + kind,
                ha="center",
                va="center",
                fontsize=8,
            )
        ax.set_xlim(0, 24)
        ax.set_ylim(height, 0)
        ax.set_aspect("auto")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(board["title"], fontsize=13, fontweight="bold")
    handles = [Patch(facecolor=c, edgecolor="#333333", label=LABELS[k]) for k, c in COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=11, frameon=False)
    fig.suptitle("tradeswarm Grafana dashboards (provisioned from docker/grafana)", fontsize=15)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(OUT, dpi=110)
    sys.stdout.write(f"wrote {OUT}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

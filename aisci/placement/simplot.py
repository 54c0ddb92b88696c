"""PNG of simulated partition utilisation over time, one panel per scenario (e.g. static vs plan)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aisci.fileio import atomic_output
from aisci.slurm.site import Site
from aisci.placement.simresult import SimResult

#: Above this many runs in a scenario, partitions are plotted as means over this many bins.
_MAX_EXACT_RUNS, _BINS = 5000, 2000


def plot_utilisation(results: Mapping[str, SimResult], sites: Site, path: Path) -> None:
    """Plot each partition's busy fraction of its primary resource (GPUs, else cores) over time.

    One panel per scenario, stacked, sharing the x axis in hours; one step line per partition of
    ``sites``; titled "<scenario>: makespan X h, mean utilisation Y %". Large runs are drawn as
    bin means (``SimResult.timeline`` with a step) to keep the file small.

    Args:
        results: scenario name -> simulation result, plotted in the mapping's order.
        sites: the sites the results were simulated on (their partitions make the lines).
        path: the PNG to write (atomically).

    Raises:
        ValueError: ``results`` is empty.
    """
    if not results:
        raise ValueError("plot_utilisation: no scenarios to plot")
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes; imported here to keep CLI start-up fast
    import matplotlib.pyplot as plt

    ids = [p.id for p in sites.partitions]
    cmap = plt.get_cmap("tab10" if len(ids) <= 10 else "tab20")  # tab10 repeats after 10 lines
    fig, axes = plt.subplots(
        len(results), 1, sharex=True, squeeze=False, figsize=(10, 0.5 + 2.6 * len(results)), layout="constrained"
    )
    for ax, (scenario, result) in zip(axes[:, 0], results.items()):
        step = None
        if len(result.runs) > _MAX_EXACT_RUNS and result.makespan_s > 0:
            step = result.makespan_s / _BINS
        for n, pid in enumerate(ids):
            times, fracs = result.timeline(pid, step)
            ax.step([t / 3600 for t in times], fracs, where="post", label=pid, linewidth=1.0, color=cmap(n % cmap.N))
        ax.set_title(
            f"{scenario}: makespan {result.makespan_s / 3600:.2f} h, "
            f"mean utilisation {100 * result.mean_utilisation:.1f} %"
        )
        ax.set_ylabel("busy fraction")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", ncol=1 + len(ids) // 12)
    axes[-1, 0].set_xlabel("time (h)")
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)

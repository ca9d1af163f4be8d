"""Pareto plot of a sweep (time vs energy per dataset, colour = precision), drawn for ``quagga sweep``."""

from __future__ import annotations

import io


def pareto_plot(rows: list[dict]) -> bytes:
    """PNG bytes: one panel per dataset, every point, and the non-dominated front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.accel.sweep import pareto_front

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    precs = list(dict.fromkeys(r["precision"] for r in rows))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(5.2 * max(len(datasets), 1), 4.2),
                             constrained_layout=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, ds in zip(axes[0], datasets):
        sub = [r for r in rows if r["dataset"] == ds]
        for k, p in enumerate(precs):
            pts = [(r["seconds"] * 1e6, r["energy_j"] * 1e6) for r in sub if r["precision"] == p]
            if pts:
                ax.scatter(*zip(*pts), s=12, alpha=0.6, color=colors[k % len(colors)], label=p)
        pts = [(r["seconds"] * 1e6, r["energy_j"] * 1e6) for r in sub]
        front = [pts[i] for i in pareto_front(pts)]
        if front:
            ax.plot(*zip(*front), "k-", lw=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("time (us)")
        ax.set_ylabel("energy (uJ)")
        ax.set_title(f"{ds}: {len(sub)} points")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()

"""The cost curves as a Markdown table, a spread summary, and a PNG chart (matplotlib, a
bench-only dependency: the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Row, repeats_text

SIDES = ("gw", "reference")
GROUP_TITLES = {
    "backlog": "ready jobs in the backlog",
    "future": "jobs scheduled for later, beside the ready ones",
    "queues": "named queues the jobs are spread over",
    "processes": "worker processes on one database",
}


def point_title(group: str, x: int, ready: int) -> str:
    if group == "backlog":
        return f"drain {x:,} ready jobs"
    if group == "future":
        return f"drain {ready:,} ready jobs, {x:,} due later"
    if group == "queues":
        return f"drain {ready:,} jobs in {x:,} named queue{'s' if x != 1 else ''}"
    return f"drain {ready:,} jobs, {x} process{'es' if x != 1 else ''}"


def _figure(row: Row | None, side: str) -> dict[str, Any]:
    if row is None:
        return {"value": None, "note": "not measured", "detail": {}}
    figure = row.gw if side == "gw" else row.baseline
    return {"value": figure.value, "note": figure.note, "detail": figure.detail}


def curve_json(
    group: str, x: int, ready: int, profile: str, drain: Row, fetch: Row | None
) -> dict[str, Any]:
    return {
        "group": group, "x": x, "ready": ready, "profile": profile,
        "drain": {side: _figure(drain, side) for side in SIDES},
        "fetch": {side: _figure(fetch, side) for side in SIDES} if fetch else None,
    }


def _rate(figure: dict[str, Any]) -> str:
    value = figure["value"]
    if value is None:
        return "n/a"
    text = f"{value:,.0f}"
    detail = figure["detail"]
    if detail.get("bounded"):
        text += f" (bounded: {detail['jobs']:,} of {detail['of']:,} in {detail['seconds']:.0f} s)"
    elif spread := repeats_text(detail.get("repeats", [])):
        text += f" ({spread})"
    return text


def _ms(fetch: dict[str, Any] | None, side: str) -> str:
    if fetch is None:
        return "—"
    figure = fetch[side]
    if figure["value"] is None:
        return "n/a"
    batch = figure["detail"].get("batch")
    return f"{figure['value']:.2f} ({batch}/fetch)" if batch else f"{figure['value']:.2f}"


def _ratio(curve: dict[str, Any]) -> str:
    gw, ref = curve["drain"]["gw"]["value"], curve["drain"]["reference"]["value"]
    if gw is None or not ref:
        return "n/a"
    return f"{gw / ref:.2f}x"


def markdown(curves: list[dict[str, Any]]) -> str:
    lines = [
        "| curve | x | profile | gw jobs/s | reference jobs/s | gw / ref"
        " | gw fetch ms (jobs/fetch) | ref fetch ms (jobs/fetch) | load |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for curve in curves:
        lines.append(
            f"| {curve['group']} | {curve['x']:,} | {curve['profile']}"
            f" | {_rate(curve['drain']['gw'])} | {_rate(curve['drain']['reference'])}"
            f" | {_ratio(curve)} | {_ms(curve['fetch'], 'gw')}"
            f" | {_ms(curve['fetch'], 'reference')} | {curve.get('loadavg', '')} |"
        )
    return "\n".join(lines) + "\n"


def runs_text(figure: dict[str, Any]) -> str:
    """How many drains a point's figure stands for: "median of 5 runs", or "1 run"."""
    runs = len(figure["detail"].get("repeats", [])) or 1
    return f"median of {runs} runs" if runs > 1 else "1 run"


def spread_lines(curves: list[dict[str, Any]]) -> list[str]:
    """gw's slowest drain against its fastest within the backlog curve and within the
    future curve, per profile (the goal: within 20% along each), each point's figure the
    median of its repeats. Points of different curves ran minutes apart: the 10,000 ready
    jobs of the future curve's first point are the backlog curve's first drain again, and
    the two differ as much as the machine does between those moments."""
    out: list[str] = []
    profiles = sorted({curve["profile"] for curve in curves})
    for profile, group in ((p, g) for p in profiles for g in ("backlog", "future")):
        figures = {
            f"{c['group']} {c['x']:,}": c["drain"]["gw"] for c in curves
            if c["profile"] == profile and c["group"] == group and c["drain"]["gw"]["value"]
        }
        if len(figures) < 2:
            continue
        slowest = min(figures, key=lambda k: figures[k]["value"])
        fastest = max(figures, key=lambda k: figures[k]["value"])
        low, high = figures[slowest], figures[fastest]
        drop = 1 - low["value"] / high["value"]
        out.append(
            f"gw {profile}, {group} curve: slowest drain ({slowest}: {low['value']:,.0f} jobs/s,"
            f" {runs_text(low)}) is {drop:.0%} below the fastest ({fastest}:"
            f" {high['value']:,.0f} jobs/s, {runs_text(high)})"
        )
    return out


def write_chart(curves: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> str:
    """Four panels, one per curve: drain rate (log scale) per side and profile."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"no chart: matplotlib is not installed (pip install -e '.[bench]'); {path}"
    groups = [g for g in GROUP_TITLES if any(c["group"] == g for c in curves)]
    if not groups:
        return "no chart: nothing measured"
    columns = min(2, len(groups))
    rows = (len(groups) + 1) // 2
    figure, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 4.2 * rows),
                                squeeze=False)
    styles = {"gw": "-", "reference": "--"}
    markers = {"defaults": "o", "tuned": "s"}
    for index, group in enumerate(groups):
        ax = axes[index // columns][index % columns]
        mine = [c for c in curves if c["group"] == group]
        categories = sorted({c["x"] for c in mine})
        for profile in sorted({c["profile"] for c in mine}):
            for side in SIDES:
                xs, ys, bounded = [], [], []
                for curve in mine:
                    figure_ = curve["drain"][side]
                    if curve["profile"] != profile or figure_["value"] is None:
                        continue
                    xs.append(curve["x"])
                    ys.append(figure_["value"])
                    bounded.append(bool(figure_["detail"].get("bounded")))
                if not xs:
                    continue
                if group == "future":  # two points: without and with the later jobs
                    xs = [categories.index(x) for x in xs]
                ax.plot(xs, ys, styles[side], marker=markers.get(profile, "o"),
                        label=f"{side}, {profile}")
                for x, y, cut in zip(xs, ys, bounded, strict=True):
                    if cut:
                        ax.annotate("bounded", (x, y), textcoords="offset points",
                                    xytext=(4, -10), fontsize=7)
        if group in ("backlog", "queues"):
            ax.set_xscale("log")
        if group == "future":
            ax.set_xticks(range(len(categories)), [f"{x:,}" for x in categories])
            ax.set_xlim(-0.3, len(categories) - 0.7)
        if group == "processes":
            ax.set_xticks(categories)
        ax.set_yscale("log")
        ax.set_xlabel(GROUP_TITLES[group])
        ax.set_ylabel("drain rate, jobs/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for index in range(len(groups), rows * columns):
        axes[index // columns][index % columns].axis("off")
    load = meta["machine"]["loadavg_before"][0], meta["machine"]["loadavg_after"][0]
    figure.suptitle(
        f"gw vs graphile-worker 0.18.0, -j {meta['concurrency']}, {meta['mode']} run"
        f" {meta['date']} (load average {load[0]:.1f} → {load[1]:.1f})", fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"wrote the chart {path}"

"""The dashboard's charts as plain SVG: geometry computed here, drawn by the template.

Every chart has a time (or value) axis with ticks, a legend and a <title> tooltip per mark.
"""

import math
from datetime import datetime, timedelta
from typing import Any

from django.utils.html import escape
from django.utils.safestring import mark_safe

from offload.admin.formatting import duration

WIDTH, HEIGHT = 520, 170
# Room for the axes' labels: left for values, bottom for times.
LEFT, BOTTOM, TOP, RIGHT = 34, 20, 8, 18
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
STATUS_COLOURS = (("succeeded", "#2e7d32"), ("failed", "#c62828"), ("cancelled", "#9e9e9e"))
# Kinds' colours in the queue-depth chart, in order (a palette that stays apart for colour-blind eyes).
KIND_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above value (at least 2, so ticks are whole jobs)."""
    if value <= 2:
        return 2
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def y_ticks(top: float) -> list[dict[str, Any]]:
    return [{"y": round(TOP + PLOT_H - PLOT_H * f, 1), "label": f"{top * f:g}"} for f in (0, 0.5, 1)]


def x_ticks(start: datetime, step: timedelta, count: int, every: int, label_format: str) -> list[dict[str, Any]]:
    width = PLOT_W / count
    return [
        {"x": round(LEFT + i * width, 1), "label": (start + i * step).strftime(label_format)}
        for i in range(0, count + 1, every)
    ]


def stacked_bars(
    buckets: list[tuple[datetime, dict[str, int]]], step: timedelta, label_format: str, tick_every: int
) -> dict[str, Any]:
    """Jobs finished per bucket, stacked by status, with axes."""
    peak = max((sum(counts.values()) for _, counts in buckets), default=0)
    top = nice_ceiling(peak)
    width = PLOT_W / max(1, len(buckets))
    bars = []
    for index, (start, counts) in enumerate(buckets):
        segments, y = [], float(TOP + PLOT_H)
        for status, colour in STATUS_COLOURS:
            height = PLOT_H * counts.get(status, 0) / top
            if height:
                y -= height
                segments.append({"y": round(y, 2), "height": round(height, 2), "colour": colour})
        summary = ", ".join(f"{counts.get(s, 0)} {s}" for s, _ in STATUS_COLOURS)
        bars.append(
            {
                "x": round(LEFT + index * width + 0.5, 2),
                "width": round(max(1.0, width - 1), 2),
                "segments": segments,
                "title": f"{start.strftime(label_format)}–{(start + step).strftime(label_format)} UTC: {summary}",
            }
        )
    totals = {s: sum(c.get(s, 0) for _, c in buckets) for s, _ in STATUS_COLOURS}
    decided = totals["succeeded"] + totals["failed"]
    return {
        "bars": bars,
        "peak": peak or 1,
        "totals": totals,
        "finished": sum(totals.values()),
        # Failures among jobs that ran to an outcome; a cancel is the operator's choice.
        "failure_rate": (100.0 * totals["failed"] / decided) if decided else None,
        "first": buckets[0][0] if buckets else None,
        "colours": STATUS_COLOURS,
        **frame(top),
        "x_ticks": x_ticks(buckets[0][0], step, len(buckets), tick_every, label_format) if buckets else [],
    }


def frame(top: float) -> dict[str, Any]:
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "top": TOP,
        "bottom": TOP + PLOT_H,
        "right": LEFT + PLOT_W,
        "y_ticks": y_ticks(top),
    }


def lines(
    series: dict[str, list[tuple[datetime, int]]],
    start: datetime,
    end: datetime,
    tick_step: timedelta,
    label_format: str,
    step: timedelta | None = None,
) -> dict[str, Any]:
    """One line per kind (queue depth over time), with axes and a legend.

    With a step, each point but the last stands for the highest value from its time to a step
    later, and its tooltip says so; the last point is the value at `end`.
    """
    peak = max((v for points in series.values() for _, v in points), default=0)
    top = nice_ceiling(peak)
    span = (end - start).total_seconds() or 1

    def x(at: datetime) -> float:
        return round(LEFT + PLOT_W * (at - start).total_seconds() / span, 1)

    def y(value: int) -> float:
        return round(TOP + PLOT_H - PLOT_H * value / top, 1)

    drawn = []
    for index, (kind, points) in enumerate(sorted(series.items())):
        colour = KIND_COLOURS[index % len(KIND_COLOURS)]
        drawn.append(
            {
                "kind": kind,
                "colour": colour,
                "points": " ".join(f"{x(at)},{y(v)}" for at, v in points),
                "marks": [
                    {"x": x(at), "y": y(v), "title": _point_title(at, v, kind, step if at != end else None)}
                    for at, v in points
                    if v
                ],
                "now": points[-1][1] if points else 0,
            }
        )
    ticks, at = [], start
    while at <= end:
        ticks.append({"x": x(at), "label": at.strftime(label_format)})
        at += tick_step
    return {"series": drawn, "peak": peak, **frame(top), "x_ticks": ticks}


def _point_title(at: datetime, value: int, kind: str, step: timedelta | None) -> str:
    if step is None:
        return f"{at:%H:%M} UTC: {value} {kind} queued"
    return f"{at:%H:%M}–{at + step:%H:%M} UTC: at most {value} {kind} queued"


def latency_rows(by_kind: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """Wait and run time p50/p95 per kind as bars on a log scale (1 s .. 4 h), with readable values."""
    low, high = math.log10(0.1), math.log10(4 * 3600)

    def length(seconds: float | None) -> float:
        if not seconds:
            return 0.0
        return round(100 * (math.log10(max(0.1, seconds)) - low) / (high - low), 1)

    rows = []
    for kind, values in sorted(by_kind.items()):
        rows.append(
            {
                "kind": kind,
                "count": values.get("count", 0),
                "cells": [
                    {"name": name, "value": duration(values.get(name)), "length": length(values.get(name))}
                    for name in ("wait_p50", "wait_p95", "run_p50", "run_p95")
                ],
            }
        )
    return {"rows": rows, "scale": ["0.1 s", "10 s", "15 min", "4 h"]}


# --- Drawing -----------------------------------------------------------------------
# The SVG is written here, not by template loops: a day of bars per kind is thousands of elements,
# which Django's template engine renders a hundred times slower than these joins.


def _axes(chart: dict[str, Any]) -> str:
    left, right, bottom = chart["left"], chart["right"], chart["bottom"]
    parts = ['<g class="ops-axis" font-size="10" fill="currentColor">']
    for t in chart["y_ticks"]:
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{t["y"]}" y2="{t["y"]}" stroke="currentColor" stroke-opacity="0.15">'
            f'</line><text x="{left - 4}" y="{t["y"]}" text-anchor="end" dominant-baseline="middle">'
            f"{escape(t['label'])}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="currentColor" stroke-opacity="0.5"></line>'
    )
    for t in chart["x_ticks"]:
        parts.append(
            f'<line x1="{t["x"]}" x2="{t["x"]}" y1="{bottom}" y2="{bottom + 4}" stroke="currentColor" '
            f'stroke-opacity="0.5"></line><text x="{t["x"]}" y="{bottom + 15}" text-anchor="middle">'
            f"{escape(t['label'])}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def bars_svg(chart: dict[str, Any], label: str, small: bool = False) -> str:
    """A stacked bar chart (stacked_bars()) as SVG, each bar with its tooltip."""
    parts = [
        f'<svg class="ops-chart{" ops-chart-small" if small else ""}" viewBox="0 0 {chart["width"]} '
        f'{chart["height"]}" role="img" aria-label="{escape(label)}">',
        _axes(chart),
    ]
    height = chart["bottom"] - chart["top"]
    for bar in chart["bars"]:
        parts.append(
            f'<g><title>{escape(bar["title"])}</title><rect x="{bar["x"]}" y="{chart["top"]}" width="{bar["width"]}" '
            f'height="{height}" fill="transparent"></rect>'
        )
        for seg in bar["segments"]:
            parts.append(
                f'<rect x="{bar["x"]}" y="{seg["y"]}" width="{bar["width"]}" height="{seg["height"]}" '
                f'fill="{seg["colour"]}"></rect>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text in it went through escape())


def lines_svg(chart: dict[str, Any], label: str) -> str:
    """A line chart (lines()) as SVG, each point with its tooltip."""
    parts = [
        f'<svg class="ops-chart" viewBox="0 0 {chart["width"]} {chart["height"]}" role="img" '
        f'aria-label="{escape(label)}">',
        _axes(chart),
    ]
    for s in chart["series"]:
        parts.append(
            f'<polyline fill="none" stroke="{s["colour"]}" stroke-width="2" points="{s["points"]}"></polyline>'
        )
        for m in s["marks"]:
            parts.append(
                f'<circle cx="{m["x"]}" cy="{m["y"]}" r="3" fill="{s["colour"]}"><title>{escape(m["title"])}</title>'
                "</circle>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text in it went through escape())

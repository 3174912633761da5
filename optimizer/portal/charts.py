"""Server-side SVG charts: no JavaScript, nothing fetched at run time, readable by screen readers
through their <title> and the table beside them. Only numbers and our own labels go into the SVG."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 24


def _label(moment: datetime, size: timedelta) -> str:
    return moment.strftime("%H:%M" if size < timedelta(days=1) else "%b %d")


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * i / (n - 1) if n > 1 else span / 2)


def _y(value: float, top: float) -> float:
    span = HEIGHT - TOP - BOTTOM
    return TOP + span - (span * value / top if top else 0)


def _slot(i: int, n: int) -> float:
    """The centre of bar i of n: bars sit inside the plot, never on its edges."""
    return LEFT + (WIDTH - LEFT - RIGHT) * (i + 0.5) / max(n, 1)


def dollars(value: float) -> str:
    """An axis label in dollars, fixed point with enough places to tell the ticks apart:
    `$0.000099`, never `$9.9e-05`."""
    if value == 0:
        return "$0"
    places = 2
    while places < 10 and abs(value) < 10 ** (2 - places):
        places += 1
    return f"${value:,.{places}f}"


def percent(value: float) -> str:
    return f"{value:.0%}"


def milliseconds(value: float) -> str:
    """An axis label in milliseconds, fixed point: `1,250 ms`, `0.35 ms`, never `1.25e+03 ms`."""
    return f"{value:,.0f} ms" if value >= 10 or value == 0 else f"{value:.2f} ms"


def _frame(title: str, times: Sequence[datetime], size: timedelta, top: float, fmt: Callable[[float], str],
           x: Callable[[int, int], float] = _x) -> list[str]:
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}"/>']
    for frac in (0, 0.5, 1):
        y = _y(top * frac, top)
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{escape(fmt(top * frac))}</text>')
    n = len(times)
    step = max(1, n // 6)
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i, n):.1f}" y="{HEIGHT - 6}" text-anchor="middle">{_label(times[i], size)}</text>')
    return parts


def spend_vs_saved(times: Sequence[datetime], spend: Sequence[Decimal], saved: Sequence[Decimal],
                   size: timedelta) -> SafeString:
    """Two lines: what was paid upstream and what LEO saved, per bucket, in dollars."""
    top = float(max([*spend, *saved, Decimal(0)])) or 1.0
    parts = _frame("Spend and saved per period (USD)", times, size, top, dollars)
    n = len(times)
    for cls, series in (("spend", spend), ("saved", saved)):
        points = " ".join(f"{_x(i, n):.1f},{_y(float(v), top):.1f}" for i, v in enumerate(series))
        parts.append(f'<polyline class="{cls}" points="{points}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)


def hit_rate(times: Sequence[datetime], rates: Sequence[float | None], size: timedelta) -> SafeString:
    """Bars: the share of requests served without an upstream call, per bucket (none: no traffic)."""
    parts = _frame("Cache hit rate per period", times, size, 1.0, percent, x=_slot)
    n = len(times)
    width = max(1.0, (WIDTH - LEFT - RIGHT) / max(n, 1) * 0.7)
    for i, rate in enumerate(rates):
        if rate is None:
            continue
        y = _y(rate, 1.0)
        parts.append(f'<rect class="hit" x="{_slot(i, n) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                     f'height="{HEIGHT - BOTTOM - y:.1f}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308


def latency(times: Sequence[datetime], p50: Sequence[float | None], p95: Sequence[float | None],
            size: timedelta) -> SafeString:
    """Two lines: median and 95th percentile request latency per bucket, in ms; gaps where no data."""
    top = max([v for v in (*p50, *p95) if v is not None] or [1.0])
    parts = _frame("Request latency per period, p50 and p95 (ms)", times, size, top, milliseconds)
    n = len(times)
    for cls, values in (("p50", p50), ("p95", p95)):
        run: list[str] = []
        for i, v in enumerate([*values, None]):
            if v is not None:
                run.append(f"{_x(i, n):.1f},{_y(v, top):.1f}")
            elif run:
                parts.append(f'<polyline class="{cls}" points="{" ".join(run)}"/>' if len(run) > 1 else
                             f'<circle class="{cls}" cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}" r="2"/>')
                run = []
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)

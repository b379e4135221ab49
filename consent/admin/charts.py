"""Charts drawn on the server as inline SVG: no JavaScript, no chart library, nothing fetched from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7c86", "#57606a")


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    values: Sequence[float | None]  # 0.0 to 1.0; None: no value for that label


def rate_chart(*, title: str, labels: Sequence[str], lines: Sequence[Line], width: int = 560, height: int = 240) -> str:
    """A line chart of rates (0 to 100 %) over `labels`, one line per entry, with a legend. Returns SVG markup."""
    left, right, top, bottom = 44, 12, 28, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, value)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="assent-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="#24292f">{escape(title)}</text>',
    ]
    for tick in (0, 25, 50, 75, 100):
        ty = y(tick / 100)
        parts.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="#d0d7de" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{ty + 4:.1f}" font-size="10" text-anchor="end" fill="#57606a">{tick}%</text>'
        )
    step = max(1, count // 6)
    for i, label in enumerate(labels):
        if i % step == 0 or i == count - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle" '
                f'fill="#57606a">{escape(label)}</text>'
            )
    for index, line in enumerate(lines):
        colour = PALETTE[index % len(PALETTE)]
        for run in _runs(line.values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
            for i, v in run:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{escape(line.name)} {escape(labels[i]) if i < len(labels) else ''}: {v:.0%}</title>"
                    "</circle>"
                )
        lx = left + (index % 4) * (plot_w / 4)
        ly = height - 22 + (index // 4) * 14
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14:.1f}" y="{ly + 1}" font-size="11" fill="#24292f">{escape(line.name)}</text>')
    if not any(v is not None for line in lines for v in line.values):
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
            'fill="#57606a">no consents recorded yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive stretches of known values: a gap in the data is a gap in the line."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, value))
    if current:
        runs.append(current)
    return runs


def bar_chart(*, title: str, bars: Sequence[tuple[str, float]], unit: str = "", width: int = 560) -> str:
    """Horizontal bars (a label and a value each), scaled to the largest value. Returns SVG markup."""
    row, left, top = 22, 150, 28
    height = top + row * max(len(bars), 1) + 8
    largest = max((v for _, v in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="assent-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" font-size="13" font-weight="bold" fill="#24292f">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        by = top + i * row
        bw = (width - left - 70) * value / largest
        parts.append(
            f'<text x="{left - 6}" y="{by + 14}" font-size="11" text-anchor="end" fill="#24292f">{escape(label)}</text>'
        )
        parts.append(f'<rect x="{left}" y="{by + 3}" width="{bw:.1f}" height="14" fill="{PALETTE[0]}"/>')
        parts.append(
            f'<text x="{left + bw + 6:.1f}" y="{by + 14}" font-size="11" fill="#24292f">{value:g}{escape(unit)}</text>'
        )
    if not bars:
        parts.append(f'<text x="{left}" y="{top + 14}" font-size="12" fill="#57606a">nothing yet</text>')
    parts.append("</svg>")
    return "".join(parts)

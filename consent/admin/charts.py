"""Charts drawn on the server as inline SVG: no JavaScript, no chart library, nothing fetched from elsewhere.

Lines that run on top of each other (two channels at the same rate) must stay apart for every reader, colour-blind
ones and a grey printout included: each line has its own colour, dash pattern and marker shape, a legend that
draws all three, and a label at its last point, nudged apart from its neighbours' labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7c86", "#57606a")
DASHES = ("", "8 4", "2 3", "10 3 2 3", "5 5", "1 2", "12 2 2 2 2 2", "3 6")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "triangle-down", "plus", "circle-open")
LABEL_GAP = 12  # px between two direct labels' baselines; closer ones are moved apart


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    values: Sequence[float | None]  # 0.0 to 1.0; None: no value for that label


def marker(shape: str, cx: float, cy: float, colour: str, title: str = "", r: float = 3.2) -> str:
    """One point of a line in its own shape (about 2 r across), with a tooltip."""
    tip = f"<title>{escape(title)}</title>" if title else ""
    fill = f'fill="{colour}" stroke="{colour}"'
    if shape == "square":
        return f'<rect x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" {fill}>{tip}</rect>'
    if shape in ("triangle", "triangle-down", "diamond"):
        points = {
            "triangle": ((cx, cy - r - 1), (cx + r + 0.5, cy + r), (cx - r - 0.5, cy + r)),
            "triangle-down": ((cx, cy + r + 1), (cx + r + 0.5, cy - r), (cx - r - 0.5, cy - r)),
            "diamond": ((cx, cy - r - 1), (cx + r + 1, cy), (cx, cy + r + 1), (cx - r - 1, cy)),
        }[shape]
        text = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        return f'<polygon points="{text}" {fill}>{tip}</polygon>'
    if shape in ("cross", "plus"):
        if shape == "cross":
            a, b, c, e = cx - r, cx + r, cy - r, cy + r
            d = f"M{a:.1f},{c:.1f}L{b:.1f},{e:.1f}M{a:.1f},{e:.1f}L{b:.1f},{c:.1f}"
        else:
            d = f"M{cx - r - 1:.1f},{cy:.1f}H{cx + r + 1:.1f}M{cx:.1f},{cy - r - 1:.1f}V{cy + r + 1:.1f}"
        return f'<path d="{d}" stroke="{colour}" stroke-width="2" fill="none">{tip}</path>'
    if shape == "circle-open":
        hollow = f'fill="#ffffff" stroke="{colour}" stroke-width="1.5"'
        return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" {hollow}>{tip}</circle>'
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" {fill}>{tip}</circle>'


def spread(wanted: Sequence[float], *, gap: float, low: float, high: float) -> list[float]:
    """Label positions near `wanted` (in any order) with at least `gap` between any two, inside [low, high]:
    labels of lines that end at the same value stack instead of printing over each other."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    placed: dict[int, float] = {}
    last = low - gap
    for i in order:  # downwards: each label at least `gap` below the one above it
        placed[i] = max(wanted[i], last + gap)
        last = placed[i]
    last = high + gap
    for i in reversed(order):  # upwards: those pushed past the bottom move up, the rest stay where they were
        placed[i] = max(low, min(placed[i], last - gap))
        last = placed[i]
    return [placed[i] for i in range(len(wanted))]


def rate_chart(
    *,
    title: str,
    labels: Sequence[str],
    lines: Sequence[Line],
    empty: str = "no consents recorded yet",
    width: int = 560,
    height: int = 250,
) -> str:
    """A line chart of rates (0 to 100 %) over `labels`, one line per entry: colour, dash and marker per line, a
    label at each line's last point, and a legend. Returns SVG markup."""
    left, top, bottom = 44, 28, 62
    label_w = 96 if lines else 12  # room right of the plot for the direct labels
    plot_w, plot_h = width - left - label_w, height - top - bottom
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
            f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" stroke="#d0d7de" stroke-width="1"/>'
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
    ends: list[tuple[int, float]] = []  # line index, y of its last point
    for index, line in enumerate(lines):
        colour, dash, shape = _style(index)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        # Lines drawn first are wider and their markers larger, so a later line lying on top leaves a rim of the
        # one beneath in view.
        below = min(len(lines) - 1 - index, 3)
        stroke, radius = 2 + 1.5 * below, 3.2 + 1.3 * below
        for run in _runs(line.values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="{stroke:g}"{dash_attr} points="{points}"/>'
                )
            for i, v in run:
                tip = f"{line.name} {labels[i] if i < len(labels) else ''}: {v:.0%}"
                parts.append(marker(shape, x(i), y(v), colour, tip, radius))
        last = next(((i, v) for i, v in reversed(list(enumerate(line.values))) if v is not None), None)
        if last is not None:
            ends.append((index, y(last[1])))
    placed = spread([ly for _i, ly in ends], gap=LABEL_GAP, low=top, high=top + plot_h)
    for (index, _ly), label_y in zip(ends, placed, strict=True):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<text x="{left + plot_w + 8:.1f}" y="{label_y + 4:.1f}" font-size="11" fill="{colour}" '
            f'class="assent-direct-label">{escape(_short(lines[index].name))}</text>'
        )
    for index, line in enumerate(lines):
        colour, dash, shape = _style(index)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        lx = left + (index % 3) * (plot_w / 3)
        ly = height - 30 + (index // 3) * 14
        parts.append(
            f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 22:.1f}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"'
            f"{dash_attr}/>"
        )
        parts.append(marker(shape, lx + 11, ly - 4, colour))
        parts.append(f'<text x="{lx + 28:.1f}" y="{ly}" font-size="11" fill="#24292f">{escape(line.name)}</text>')
    if not any(v is not None for line in lines for v in line.values):
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
            f'fill="#57606a">{escape(empty)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _style(index: int) -> tuple[str, str, str]:
    return PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)], MARKERS[index % len(MARKERS)]


def _short(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


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


def bar_chart(
    *, title: str, bars: Sequence[tuple[str, float]], unit: str = "", empty: str = "nothing yet", width: int = 560
) -> str:
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
        parts.append(f'<text x="{left}" y="{top + 14}" font-size="12" fill="#57606a">{escape(empty)}</text>')
    parts.append("</svg>")
    return "".join(parts)

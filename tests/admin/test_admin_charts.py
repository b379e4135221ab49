"""The dashboard's charts (pure, no database): lines that overlap stay apart by dash, marker and label."""

from __future__ import annotations

import itertools
import re

from consent.admin.charts import Line, bar_chart, rate_chart, spread

WEEKS = ["05.01.", "12.01.", "19.01."]


def test_lines_on_top_of_each_other_differ_in_dash_and_marker_and_are_labelled_apart() -> None:
    # given three channels at exactly the same rates: drawn in colour alone, only the last would show
    lines = [Line(name, [0.5, 0.5, 0.5]) for name in ("E-mail", "Text message", "App notifications")]

    svg = rate_chart(title="Newsletter", labels=WEEKS, lines=lines)

    strokes = re.findall(
        r'<polyline fill="none" stroke="[^"]+" stroke-width="([^"]+)"( stroke-dasharray="[^"]+")?', svg
    )
    assert len({dash for _width, dash in strokes}) == 3  # the solid line and two dash patterns
    assert [float(width) for width, _dash in strokes] == [5, 3.5, 2]  # the line beneath shows around the one above
    assert svg.count("<circle") >= 3  # a circle,
    assert "<rect" in svg  # a square
    assert "<polygon" in svg  # and a triangle
    labels = re.findall(r'<text x="[^"]+" y="([^"]+)"[^>]*class="assent-direct-label">([^<]+)</text>', svg)
    assert [name for _y, name in labels] == ["E-mail", "Text message", "App notificat…"]
    ys = sorted(float(y) for y, _name in labels)
    assert all(b - a >= 12 for a, b in itertools.pairwise(ys))  # stacked, not printed over each other


def test_spread_keeps_labels_apart_and_inside_the_plot() -> None:
    assert spread([50, 50, 50], gap=12, low=0, high=200) == [50, 62, 74]
    assert spread([198, 199, 10], gap=12, low=0, high=200) == [188, 200, 10]  # pushed up from the bottom edge only
    assert spread([], gap=12, low=0, high=200) == []


def test_texts_are_escaped_and_an_empty_chart_says_so_in_the_given_words() -> None:
    svg = rate_chart(title="<b>x</b>", labels=WEEKS, lines=[Line("a&b", [None, None, None])], empty="noch nichts")

    assert "<b>" not in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg
    assert "a&amp;b" in svg
    assert "noch nichts" in svg
    assert "keine" in bar_chart(title="t", bars=[], empty="keine")

"""Server-side SVG charts (no JavaScript, no CDN): lines, stacked bars and a heat map.

Inputs are numbers and short labels (dates, band names); every label is escaped before it goes
into the markup, so the ``Markup`` returned is safe to embed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

W, H, PAD_L, PAD_B, PAD_T = 640, 220, 44, 28, 12
COLORS = ("#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2")


def _frame(body: str, title: str, legend: Sequence[tuple[str, str]]) -> Markup:
    keys = "".join(
        f'<rect x="{PAD_L + i * 130}" y="{H + 6}" width="10" height="10" fill="{c}"/>'
        f'<text x="{PAD_L + i * 130 + 14}" y="{H + 15}" font-size="11">{escape(n)}</text>'
        for i, (n, c) in enumerate(legend)
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {W} {H + 22}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}{keys}</svg>"
    )


def _axes(labels: Sequence[str], top: float, fmt: str) -> str:
    inner_h = H - PAD_B - PAD_T
    out = [
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W}" y2="{H - PAD_B}" stroke="#999"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#999"/>',
    ]
    for i in range(5):
        v = top * i / 4
        y = H - PAD_B - inner_h * i / 4
        out.append(
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(fmt.format(v))}</text>"
        )
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0:
            x = _x(i, len(labels))
            out.append(
                f'<text x="{x:.1f}" y="{H - PAD_B + 14}" font-size="10" text-anchor="middle">'
                f"{escape(label[-5:])}</text>"
            )
    return "".join(out)


def _x(i: int, n: int) -> float:
    inner = W - PAD_L - 10
    return PAD_L + 10 + (inner - 10) * (i + 0.5) / max(n, 1)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    fmt: str = "{:.0f}",
    top: float | None = None,
) -> Markup:
    """One polyline per series; gaps (None) break the line."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = top or (max(values) * 1.1 if values and max(values) > 0 else 1.0)
    inner_h = H - PAD_B - PAD_T
    parts = [_axes(labels, top, fmt)]
    for k, (_name, vs) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(vs):
            if v is None:
                runs.append([])
                continue
            y = H - PAD_B - inner_h * min(v, top) / top
            runs[-1].append(f"{_x(i, len(labels)):.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{runs[-1][-1].split(",")[0]}" cy="{y:.1f}" r="2.5" fill="{color}"/>'
            )
        parts.extend(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(r)}"/>'
            for r in runs
            if len(r) > 1
        )
    legend = [(n, COLORS[k % len(COLORS)]) for k, (n, _) in enumerate(series)]
    return _frame("".join(parts), title, legend)


def stacked_bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> Markup:
    """Bars per label, one stacked segment per series."""
    totals = [sum(vs[i] for _, vs in series) for i in range(len(labels))]
    # Counts: a top divisible by the 4 grid steps keeps the axis labels whole numbers.
    top = float(max(4, math.ceil(max(totals, default=0) * 1.1 / 4) * 4))
    inner_h = H - PAD_B - PAD_T
    bar_w = max(2.0, (W - PAD_L - 20) / max(len(labels), 1) * 0.7)
    parts = [_axes(labels, top, "{:.0f}")]
    for i in range(len(labels)):
        base = float(H - PAD_B)
        for k, (_name, vs) in enumerate(series):
            h = inner_h * vs[i] / top
            if h <= 0:
                continue
            base -= h
            parts.append(
                f'<rect x="{_x(i, len(labels)) - bar_w / 2:.1f}" y="{base:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{COLORS[k % len(COLORS)]}"/>'
            )
    legend = [(n, COLORS[k % len(COLORS)]) for k, (n, _) in enumerate(series)]
    return _frame("".join(parts), title, legend)


def heat_map(
    title: str, weekdays: Sequence[str], cells: Sequence[Sequence[tuple[int, float | None]]]
) -> Markup:
    """7 x 24 grid: the number is the question count, the colour the median FRT (red = slow)."""
    cw, ch, left, top_y = 24, 22, 36, 16
    medians = [m for row in cells for _, m in row if m is not None]
    worst = max(medians) if medians else 1.0
    parts = [
        f'<text x="{left + h * cw + cw / 2}" y="{top_y - 4}" font-size="9" '
        f'text-anchor="middle">{h}</text>'
        for h in range(0, 24, 2)
    ]
    for d, row in enumerate(cells):
        y = top_y + d * ch
        parts.append(
            f'<text x="{left - 4}" y="{y + 15}" font-size="11" text-anchor="end">'
            f"{escape(weekdays[d])}</text>"
        )
        for h, (n, med) in enumerate(row):
            if med is None:
                fill = "#f3f4f6" if n == 0 else "#e5e7eb"
            else:
                ratio = min(med / worst, 1.0) if worst else 0.0
                fill = f"hsl({120 - 120 * ratio:.0f},70%,{80 - 25 * ratio:.0f}%)"
            parts.append(
                f'<rect x="{left + h * cw}" y="{y}" width="{cw - 1}" height="{ch - 1}" '
                f'fill="{fill}"><title>{escape(weekdays[d])} {h}:00 n={n}'
                f"{'' if med is None else f' p50={med:.0f}s'}</title></rect>"
            )
            if n:
                parts.append(
                    f'<text x="{left + h * cw + cw / 2 - 0.5}" y="{y + 14}" font-size="9" '
                    f'text-anchor="middle">{n}</text>'
                )
    width, height = left + 24 * cw + 4, top_y + 7 * ch + 4
    return Markup(
        f'<svg class="chart heat" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )

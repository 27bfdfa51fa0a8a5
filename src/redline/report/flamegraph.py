"""A flame graph of collapsed stacks as one self-contained SVG: no script, no external font
or stylesheet, so it opens offline as a file and can be pasted inline into report.html.

Root at the bottom, callees above their callers, each frame as wide as its share of the
samples; siblings in name order (as flamegraph.pl does), so two profiles of the same code
look alike. Hovering a frame shows its <title>: the frame, its samples and share. Colours
are per package (analysis.profile_stacks.package_of), stable across profiles. Frames
narrower than `min_share` are left out with everything above them: that keeps a long
profile of a deep framework to a few hundred kB, and such frames could not be read anyway.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass, field
from html import escape

from redline.analysis.profile_stacks import IDLE_FRAME, STDLIB, package_of, split_frame

ROW_PX = 16
FONT_PX = 11
CHAR_PX = 6.7  # the advance of one character of an 11 px monospace font, near enough
PAD_PX = 10
HEADER_PX = 44  # the title and the package legend
MIN_SHARE = 0.001

_FIXED = {STDLIB: "#c8c8c8", "python": "#dcd6c8", "<idle>": "#b0c4de"}


@dataclass
class _Node:
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def flamegraph_svg(
    stacks: dict[tuple[str, ...], int], title: str, width: int = 1200, min_share: float = MIN_SHARE
) -> str:
    """The SVG text. One `<g class="f">` with one `<rect>` per frame drawn, the root "all"
    included; an empty profile gives a small SVG that says so."""
    root = _Node()
    for stack, n in stacks.items():
        if n <= 0:
            continue
        root.count += n
        node = root
        for frame in stack:
            node = node.children.setdefault(frame, _Node())
            node.count += n
    total = root.count
    inner = width - 2 * PAD_PX
    min_count = total * min_share
    rows: list[tuple[int, float, float, str, int]] = []  # depth, x, width, frame, samples
    package_px: dict[str, float] = {}

    def walk(node: _Node, name: str, depth: int, x: float) -> None:
        w = node.count / total * inner
        rows.append((depth, x, w, name, node.count))
        if depth:
            pkg = _package(name)
            package_px[pkg] = package_px.get(pkg, 0.0) + w
        for child_name in sorted(node.children):
            child = node.children[child_name]
            if child.count >= min_count:
                walk(child, child_name, depth + 1, x)
            x += child.count / total * inner

    if total:
        walk(root, "all", 0, float(PAD_PX))
    depth = max((r[0] for r in rows), default=0) + 1
    height = HEADER_PX + depth * ROW_PX + PAD_PX
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rl-flame" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="{FONT_PX}">',
        # Scoped to this SVG's class so that inlined into a page it styles nothing else.
        "<style>.rl-flame g.f:hover rect{stroke:#000;stroke-width:1}</style>",
        f'<rect width="{width}" height="{height}" fill="#fdfdf6"/>',
        f'<text x="{width / 2:.0f}" y="17" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    if not total:
        out.append(f'<text x="{width / 2:.0f}" y="36" text-anchor="middle">no samples</text></svg>')
        return "\n".join(out)
    out.append(_legend(package_px, width))
    for d, x, w, name, n in rows:
        y = height - PAD_PX - (d + 1) * ROW_PX
        pkg = "" if d == 0 else _package(name)
        tip = f"{name}\n{n:,} samples, {n / total * 100:.2f} %" + (f"\npackage {pkg}" if pkg else "")
        colour = "#e8e8e8" if d == 0 else _colour(pkg)
        label = _fit(_label(name), w)
        text = f'<text x="{x + 3:.1f}" y="{y + ROW_PX - 4}" fill="#000">{escape(label)}</text>' if label else ""
        out.append(
            f'<g class="f"><title>{escape(tip)}</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.1):.1f}" height="{ROW_PX - 1}" '
            f'fill="{colour}" rx="1"/>{text}</g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _package(frame: str) -> str:
    if frame == IDLE_FRAME:
        return IDLE_FRAME
    return package_of(split_frame(frame)[1])


def _label(frame: str) -> str:
    """The function's name alone: the file and line are in the hover title."""
    return split_frame(frame)[0]


def _fit(label: str, width_px: float) -> str:
    """The label cut to what fits the rect (two characters for the ".."), or nothing."""
    room = int((width_px - 6) / CHAR_PX)
    if room < 3:
        return ""
    return label if len(label) <= room else label[: room - 2] + ".."


def _colour(package: str) -> str:
    """A warm colour of its own for each package, the same in every profile."""
    fixed = _FIXED.get(package)
    if fixed is not None:
        return fixed
    h = hashlib.blake2b(package.encode(), digest_size=4).digest()
    hue = (h[0] / 255) * 0.17  # red … yellow, the flame-graph palette
    light = 0.55 + (h[1] / 255) * 0.17
    sat = 0.65 + (h[2] / 255) * 0.3
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _legend(package_px: dict[str, float], width: int) -> str:
    """The widest packages' swatches, left to right, as far as they fit in one line."""
    parts, x = [], float(PAD_PX)
    for pkg in sorted(package_px, key=lambda p: -package_px[p])[:12]:
        w = 14 + len(pkg) * CHAR_PX + 14
        if x + w > width - PAD_PX:
            break
        parts.append(
            f'<rect x="{x:.0f}" y="27" width="10" height="10" fill="{_colour(pkg)}"/>'
            f'<text x="{x + 14:.0f}" y="36">{escape(pkg)}</text>'
        )
        x += w
    return f'<g class="legend">{"".join(parts)}</g>'

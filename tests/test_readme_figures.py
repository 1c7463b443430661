"""The README's editor pictures and the template thumbnails: present, referenced, and at a legible size.

They are made by ``python -m llm_assist.tools.editor_check --thumbnails`` (a real ComfyUI editor at its
100 % zoom); these checks keep a later edit from shrinking them below legibility or leaving one behind.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "docs" / "figures"
WORKFLOWS = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
README_COLUMN_PX = 900  # GitHub shows a README about 880 px wide: wider pictures are shrunk
THUMBNAIL_PX = 512  # the template browser's card is 256 px: 2x for sharp displays, no smaller


def _referenced() -> list[str]:
    return re.findall(r"\]\((docs/figures/[^)]+)\)", (REPO / "README.md").read_text(encoding="utf-8"))


def test_every_figure_is_referenced_and_exists():
    referenced = _referenced()
    assert referenced, "README shows no figure"
    missing = [r for r in referenced if not (REPO / r).is_file()]
    assert not missing, f"README points at missing figures {missing}"
    orphans = sorted(str(p.relative_to(REPO)) for p in FIGURES.iterdir() if str(p.relative_to(REPO)) not in referenced)
    assert not orphans, f"figures no README line shows: {orphans}"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_each_workflow_has_figures_at_editor_size(name):
    panels = [r for r in _referenced() if re.fullmatch(rf"docs/figures/{re.escape(name)}-\d+\.png", r)]
    assert panels, f"README has no picture of {name} (docs/figures/{name}-1.png ...)"
    for panel in panels:
        width, height = Image.open(REPO / panel).size
        # 100 % zoom: a node column is 320-400 graph units, so a panel narrower than one column was scaled down
        assert 300 <= width <= README_COLUMN_PX, f"{panel} is {width} px wide: not the editor at 100 % in the README column"
        assert height <= 2000, f"{panel} is {height} px tall"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_thumbnail_is_a_square_jpeg_for_the_template_card(name):
    thumb = REPO / "example_workflows" / f"{name}.jpg"
    with Image.open(thumb) as image:
        assert image.format == "JPEG" and image.size == (THUMBNAIL_PX, THUMBNAIL_PX), f"{thumb}: {image.format} {image.size}"


def test_figures_stay_small():
    total = sum(p.stat().st_size for p in FIGURES.iterdir()) + sum(
        (REPO / "example_workflows" / f"{n}.jpg").stat().st_size for n in WORKFLOWS)
    assert total < 4 * 2**20, f"figures and thumbnails take {total / 2**20:.1f} MiB"

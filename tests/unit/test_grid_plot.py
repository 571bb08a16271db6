"""The feeder plot: one panel per feeder, load against the limit in force, as PNG or SVG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.grid_plot import feeder_figure, write_feeder_plot

FEEDERS = {
    "F2": {"minute": [0, 1, 2], "load_w": [6_000, 20_000, 20_000], "limit_w": [20_000] * 3},
    "F1": {"minute": [0, 1, 2], "load_w": [6_000, 9_000, 20_000], "limit_w": [20_000, 9_000, 20_000]},
}


def test_each_feeder_has_a_panel_with_its_load_and_its_limit(tmp_path: Path) -> None:
    figure = feeder_figure(FEEDERS, title="t")
    panels = figure.get_axes()
    assert [ax.get_title(loc="left") for ax in panels] == ["Feeder F1", "Feeder F2"]
    load, limit = panels[0].get_lines()
    assert np.asarray(load.get_ydata()).tolist() == [6.0, 9.0, 20.0]
    assert np.asarray(limit.get_ydata()).tolist() == [20.0, 9.0, 20.0]
    write_feeder_plot(tmp_path / "f.svg", FEEDERS, title="t")
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


def test_a_plot_needs_feeders_and_a_picture_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no feeders"):
        feeder_figure({}, title="t")
    with pytest.raises(ValueError, match=r"\.png or an \.svg"):
        write_feeder_plot(tmp_path / "f.html", FEEDERS, title="t")

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.geo import BBox, Point, distance_m


def test_parse_bbox() -> None:
    assert BBox.parse("-2.7,51.4,-2.5,51.5") == BBox(-2.7, 51.4, -2.5, 51.5)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,0,3", "0,5,1,4", "nan,1,2,3", "-200,0,0,1"])
def test_bad_bbox_is_a_clear_error(text: str) -> None:
    with pytest.raises(InvalidRequest):
        BBox.parse(text)


def test_distance_london_bristol() -> None:
    d = distance_m(Point(51.5072, -0.1276), Point(51.4545, -2.5879))
    assert 170_000 < d < 172_000


@given(
    st.floats(49.5, 59.0),
    st.floats(-8.0, 2.0),
    st.floats(10, 50_000),
    st.floats(0, 1),
    st.floats(0, 6.283),
)
def test_box_around_holds_every_point_within_radius(
    lat: float, lon: float, r: float, f: float, bearing: float
) -> None:
    import math

    centre = Point(lat, lon)
    # walk f*r metres along a bearing (small-distance approximation, kept inside the radius)
    d = f * r * 0.999
    p = Point(
        lat + d * math.cos(bearing) / 111_195,
        lon + d * math.sin(bearing) / (111_195 * math.cos(math.radians(lat))),
    )
    if distance_m(centre, p) <= r:
        assert BBox.around(centre, r).contains(p)

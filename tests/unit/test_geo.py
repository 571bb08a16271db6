from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.geo import EARTH_RADIUS_M, BBox, Point, distance_m


def test_parse_bbox() -> None:
    assert BBox.parse("-2.7,51.4,-2.5,51.5") == BBox(-2.7, 51.4, -2.5, 51.5)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,0,3", "0,5,1,4", "nan,1,2,3", "-200,0,0,1"])
def test_bad_bbox_is_a_clear_error(text: str) -> None:
    with pytest.raises(InvalidRequest):
        BBox.parse(text)


def test_distance_london_bristol() -> None:
    d = distance_m(Point(51.5072, -0.1276), Point(51.4545, -2.5879))
    assert 170_000 < d < 172_000


def destination(start: Point, metres: float, bearing: float) -> Point:
    """The point `metres` from `start` along the great circle leaving it at `bearing` (radians)."""
    d = metres / EARTH_RADIUS_M
    p1, l1 = math.radians(start.lat), math.radians(start.lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return Point(math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180)


# North of its centre, a circle reaches farther east than its centre's latitude says: this point is
# 149,974 m from the centre and was outside the box of a 150 km circle taken at 58 degrees north.
EDGE_CENTRE, EDGE_RADIUS_M, EDGE_POINT = Point(58.0, -4.0), 150_000.0, Point(58.0254, -1.4542)


def test_box_around_holds_the_circles_widest_point() -> None:
    assert distance_m(EDGE_CENTRE, EDGE_POINT) < EDGE_RADIUS_M
    assert BBox.around(EDGE_CENTRE, EDGE_RADIUS_M).contains(EDGE_POINT)
    south = Point(-EDGE_POINT.lat, EDGE_POINT.lon)
    assert BBox.around(Point(-EDGE_CENTRE.lat, EDGE_CENTRE.lon), EDGE_RADIUS_M).contains(south)


def test_box_around_a_circle_over_a_pole_spans_every_longitude() -> None:
    box = BBox.around(Point(89.5, 10.0), 100_000)
    assert (box.west, box.east, box.north) == (-180.0, 180.0, 90.0)


def _in_box_if_within(centre: Point, r: float, p: Point) -> None:
    box = BBox.around(centre, r)
    if distance_m(centre, p) <= r:
        assert box.south <= p.lat <= box.north, (box, p)
        # Clamped at the antimeridian (the box does not cross it), a point may have wrapped.
        if box.west > -180 and box.east < 180:
            assert box.contains(p), (box, p, distance_m(centre, p))


@given(
    st.floats(-89.0, 89.0),
    st.floats(-170.0, 170.0),
    st.floats(10, 1_000_000),
    st.floats(0, 1),
    st.floats(0, 2 * math.pi),
)
# Due north on the circle itself: the box's north edge was one rounding step short of the point.
@example(1.0, 0.0, 164590.05917501537, 1.0, 0.0)
def test_box_around_holds_every_point_within_radius(
    lat: float, lon: float, r: float, f: float, bearing: float
) -> None:
    """The oracle is the haversine distance: whatever is within r of the centre is in the box."""
    centre = Point(lat, lon)
    _in_box_if_within(centre, r, destination(centre, f * r, bearing))


@given(
    st.floats(-80.0, 80.0),
    st.floats(-170.0, 170.0),
    st.floats(1_000, 200_000),
    st.floats(0.999, 1),
    st.floats(-0.02, 0.02),
    st.sampled_from([1, -1]),
)
def test_box_around_holds_the_points_near_the_circles_widest(
    lat: float, lon: float, r: float, f: float, off: float, side: int
) -> None:
    """Near where the circle touches a meridian (a right angle there makes the bearing
    acos(tan d * tan lat)), where a box from the centre's latitude cut the circle."""
    centre = Point(lat, lon)
    tangent = math.acos(math.tan(r / EARTH_RADIUS_M) * math.tan(math.radians(lat)))
    _in_box_if_within(centre, r, destination(centre, f * r, side * tangent + off))

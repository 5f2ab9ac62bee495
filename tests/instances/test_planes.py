"""Room planes found from geometry alone: the floor (grown over a warped scan) and the walls that bound
the room are stuff before grouping, so smoothed features cannot make a chair swallow the floor."""

from __future__ import annotations

import numpy as np
import pytest
from instances_fixtures import CHAIR, FLOOR, NAMES, STEP, box_surface, room

from geopurify.errors import ConfigError
from geopurify.geometry import voxelize
from geopurify.instances import InstanceConfig, find_instances, voxel_graph
from geopurify.instances.group import pca_normals
from geopurify.instances.planes import PlaneOptions, find_floor, find_walls, room_planes


def bleeding_room(warp=0.0):
    """The fixture room with chair 0's class carried 15 cm onto the floor around it (as smoothed features
    do), and the floor optionally warped by ``warp`` metres (a drifting scan)."""
    pts, feats, text, cls, obj = room()
    fl = cls == FLOOR
    pts[fl, 2] += warp * np.sin(pts[fl, 0] * 1.5)  # the objects stand on the warped floor
    for o in range(4):
        m = obj == o
        x = pts[m, 0].mean()
        pts[m, 2] += warp * np.sin(x * 1.5)
    near = fl & (np.abs(pts[:, 0] - 0.7) < 0.35) & (np.abs(pts[:, 1] - 0.7) < 0.35)
    rng = np.random.default_rng(3)
    feats[near] = text[CHAIR] + 0.3 * rng.standard_normal((int(near.sum()), text.shape[1]))
    return pts, feats, text, cls, obj, near


def chair0(res, obj):
    return max(res.instances, key=lambda i: np.count_nonzero(obj[i.points] == 0))


@pytest.mark.parametrize("warp", [0.0, 0.12])
def test_floor_is_stuff_even_where_features_say_chair(warp):
    pts, feats, text, cls, obj, near = bleeding_room(warp)
    on = chair0(find_instances(pts, feats, text, NAMES, InstanceConfig()), obj)
    truth = np.flatnonzero(obj == 0)
    assert np.isin(on.points, np.flatnonzero(near)).sum() < 0.02 * len(truth)
    assert len(np.intersect1d(on.points, truth)) / len(np.union1d(on.points, truth)) > 0.9
    # without the floor plane the chair takes the floor its features claim
    off = chair0(find_instances(pts, feats, text, NAMES, InstanceConfig(stuff_planes=[])), obj)
    assert np.isin(off.points, np.flatnonzero(near)).sum() > 0.3 * near.sum()


def scan_voxels(pts, size=0.03):
    g = voxelize(pts, size)
    nb = []
    e = voxel_graph(g, None, 8, 2.0, knn_out=nb)
    return g, e, pca_normals(g.centers, nb[0])


def test_walls_bound_the_room_a_cabinet_front_does_not():
    pts, *_ = room()
    g_ = np.arange(0, 3, STEP)
    Y, Z = np.meshgrid(g_, np.arange(STEP, 1.5, STEP))
    wall2 = np.c_[Y.ravel(), np.full(Y.size, 3.0), Z.ravel()]  # a second wall, at y = 3
    cabinet = box_surface([0.6, 1.2, 0.0], [2.6, 1.6, 1.1])  # a 2.0 x 1.1 m front: larger than wall_area
    pts = np.concatenate([pts, wall2, cabinet]).astype(np.float32)
    g, e, vn = scan_voxels(pts)
    walls = find_walls(g.centers, vn, 0.03, PlaneOptions())
    found = sorted((int(np.argmax(np.abs(w.normal))), round(abs(w.offset), 1)) for w in walls)
    assert found == [(0, 0.0), (1, 3.0)], found  # x = 0 and y = 3, not the cabinet's y = 1.2 / 1.6 faces
    planes, mask = room_planes(g.centers, vn, 0.03, PlaneOptions(), edges=e)
    assert [p.kind for p in planes] == ["floor", "wall", "wall"]
    cab = voxelize(pts, 0.03).point_to_voxel[-len(cabinet) :]
    assert mask[cab].mean() < 0.1  # the cabinet stays a thing (only its foot touches the floor band)


def test_plane_options_are_validated():
    with pytest.raises(ConfigError, match="stuff_planes"):
        InstanceConfig(stuff_planes=["ceiling"])
    with pytest.raises(ConfigError, match="stuff_planes"):
        InstanceConfig(stuff_planes="floor")
    with pytest.raises(ConfigError, match="plane_band"):
        InstanceConfig(plane_band=0)


def test_a_scan_without_a_floor_keeps_its_lowest_level_surface():
    # a table alone: its top is the lowest large level surface, but its legs stand below it
    top = box_surface([0.0, 0.0, 0.70], [1.2, 0.8, 0.75])
    legs = [box_surface([x, y, 0.0], [x + 0.05, y + 0.05, 0.7]) for x in (0.0, 1.15) for y in (0.0, 0.75)]
    pts = np.concatenate([top, *legs]).astype(np.float32)
    g, e, vn = scan_voxels(pts)
    planes, mask = room_planes(g.centers, vn, 0.03, PlaneOptions(), edges=e)
    assert not [p for p in planes if p.kind == "floor"] and not mask.any()


def test_floor_of_a_sparse_scan_fits_one_point_without_error():
    # three level voxels a metre apart in height: the lowest height bin holds one voxel, and the plane
    # fit through it must not fail (an SVD of fewer than 3 points has fewer than 3 right vectors)
    centers = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    normals = np.tile([0.0, 0.0, 1.0], (3, 1))
    floor = find_floor(centers, normals, 0.02, PlaneOptions())
    assert floor is not None and floor.voxels == 1
    np.testing.assert_allclose(floor.normal, [0.0, 0.0, 1.0], atol=1e-6)
    assert abs(floor.offset) < 1e-6


def test_floor_of_a_large_flat_fits_without_an_m_by_m_matrix():
    """A 300k-voxel tilted floor: the plane fit used a full SVD of the (M, 3) points, whose (M, M) U took
    33 s and 3 GB on a real room's 20k floor voxels and is refused outright here (720 GB)."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 30, (300_000, 2))
    z = 0.02 * xy[:, 0] / 30 + rng.normal(0, 0.002, len(xy))  # 0.04 degrees of tilt, 2 mm noise
    centers = np.column_stack([xy, z])
    normals = np.tile([0.0, 0.0, 1.0], (len(xy), 1))
    floor = find_floor(centers, normals, 0.02, PlaneOptions())
    assert floor is not None and floor.voxels > 250_000
    assert floor.normal[2] > 0.999999 and abs(floor.normal[0]) > 1e-4  # the fit, not the level fallback

import numpy as np
import pytest
from lifting_fixtures import make_frame

from geopurify.errors import FrameError
from geopurify.lifting import LiftConfig, check_pose, frame_view, project_points, visible_mask
from geopurify.lifting.projection import Projection

K = np.array([[100.0, 0.0, 50.0], [0.0, 200.0, 40.0], [0.0, 0.0, 1.0]])


def test_project_hand_computed_identity_and_translation():
    w2c = np.eye(4)
    w2c[:3, 3] = [0.1, -0.2, 1.0]  # camera coords = world + t
    p = project_points(np.array([[0.4, 0.2, 1.0], [0.0, 0.0, -3.0]]), K, w2c)
    # point 0: cam (0.5, 0.0, 2.0) -> u = 100*0.5/2 + 50 = 75, v = 200*0/2 + 40 = 40
    assert p.u[0] == pytest.approx(75.0) and p.v[0] == pytest.approx(40.0) and p.z[0] == pytest.approx(2.0)
    # point 1: cam z = -2 -> behind the camera, no pixel
    assert p.z[1] == pytest.approx(-2.0) and np.isnan(p.u[1])


def test_project_with_rotation_uses_world_to_camera():
    # camera-to-world: camera x axis = world y, camera z axis = world x; camera at (-1, 0, 0)
    c2w = np.eye(4)
    c2w[:3, :3] = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)
    c2w[:3, 3] = [-1.0, 0.0, 0.0]
    p = project_points(np.array([[1.0, 0.5, 0.25]]), K, np.linalg.inv(c2w))
    # cam = R^T (X - c) = (0.5, 0.25, 2.0): u = 100*0.25 + 50 = 75, v = 200*0.125 + 40 = 65
    assert (p.u[0], p.v[0], p.z[0]) == pytest.approx((75.0, 65.0, 2.0))


def test_border_uses_rounded_pixel():
    u = np.array([9.4, 9.6, 89.4, 89.6, 50.0, 50.0])
    v = np.array([40.0, 40.0, 40.0, 40.0, 9.6, 69.6])
    proj = Projection(u=u, v=v, z=np.ones(6))
    ok = visible_mask(proj, (80, 100), border=10)
    assert ok.tolist() == [False, True, True, False, True, False]
    assert visible_mask(proj, (80, 100), border=0).all()


def test_occlusion_within_five_percent():
    depth = np.full((80, 100), 2.0, np.float32)
    depth[40, 60] = 0.0  # invalid depth pixel
    z = np.array([2.09, 2.11, 1.91, 1.89, 3.0, 2.0])
    u = np.array([50, 50, 50, 50, 50, 60.2])
    proj = Projection(u=u.astype(float), v=np.full(6, 40.0), z=z)
    ok = visible_mask(proj, (80, 100), 10, depth=depth, tolerance=0.05)
    # |d - z| <= 0.05 d = 0.1: 2.09 and 1.91 in, 2.11 / 1.89 out, 3.0 hidden behind the surface
    assert ok.tolist() == [True, False, True, False, False, False]


def test_colour_and_depth_resolutions_differ():
    """Depth is sampled at the projection in the DEPTH image (own K and size)."""
    K_c = np.array([[400.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])
    K_d = np.array([[200.0, 0, 159.75], [0, 200.0, 119.75], [0, 0, 1]])
    depth = np.full((240, 320), 3.0, np.float32)
    depth[:, :160] = 1.0  # a near wall covers the left half of the depth image
    # two points at z = 3: left one (x < 0) is behind the wall, right one visible
    pts = np.array([[-0.5, 0.0, 3.0], [0.5, 0.0, 3.0], [0.5, 0.0, 1.0]])
    frame = make_frame(0, K_c, K_d, np.eye(4), (480, 640), depth)
    idx, u, v = frame_view(pts, frame, LiftConfig())
    assert idx.tolist() == [1]
    assert u[0] == pytest.approx(400 * 0.5 / 3 + 319.5) and v[0] == pytest.approx(239.5)
    # the depth image sampled with colour intrinsics would index outside the 320-wide image
    # for u ~ 386; the right answer requires K_depth: u_d = 200*0.5/3 + 159.75 ~ 193 -> depth 3.0


def test_frame_view_rejects_wrong_depth_size_and_bad_pose():
    depth = np.ones((10, 10), np.float32)
    f = make_frame(0, K, K, np.eye(4), (80, 100), depth)
    f.load_depth = lambda: np.ones((11, 10), np.float32)
    with pytest.raises(FrameError) as e:
        frame_view(np.zeros((1, 3)), f, LiftConfig())
    assert e.value.reason == "bad_depth"
    for bad in (np.full((4, 4), np.nan), np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([1.0, 1.0, -1.0, 1.0])):
        with pytest.raises(FrameError) as e:
            check_pose(bad, "pose/3.txt")
        assert e.value.reason == "bad_pose" and "pose/3.txt" in str(e.value)
    check_pose(np.eye(4))

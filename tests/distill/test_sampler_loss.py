"""Sampler invariants against a brute-force reference, and InfoNCE against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geopurify.distill import ContrastiveSample, ContrastiveTable, info_nce, sample_contrastive


def _scene(v=300, t=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, (v, 3)).astype(np.float32)
    teacher = torch.from_numpy(rng.standard_normal((v, t)).astype(np.float32))
    return centers, teacher


def test_sampler_matches_brute_force():
    centers, teacher = _scene()
    s = sample_contrastive(
        teacher,
        centers,
        anchors=64,
        macro_negatives=8,
        micro_negatives=4,
        micro_pool=20,
        generator=torch.Generator().manual_seed(1),
        chunk=16,
    )  # several chunks
    tn = torch.nn.functional.normalize(teacher, dim=1)
    sim = (tn @ tn.T).numpy()
    d = ((centers[:, None] - centers[None]) ** 2).sum(-1)
    assert s.anchors.unique().numel() == 64
    assert s.macro.shape == (64, 8) and s.micro.shape == (64, 4)
    for i, a in enumerate(s.anchors.tolist()):
        row = sim[a].copy()
        others = np.delete(np.arange(len(row)), a)
        # positive: argmax of teacher similarity excluding the anchor
        assert s.positives[i] != a
        assert math.isclose(row[s.positives[i]], row[others].max(), abs_tol=1e-6)
        # macro: the 8 least similar in the scene (compare values: ties are allowed to differ by index)
        expect = np.sort(row[others])[:8]
        np.testing.assert_allclose(np.sort(row[s.macro[i].numpy()]), expect, atol=1e-6)
        # micro: inside the 20 spatial nearest (self excluded) and the 4 least similar there
        nn20 = np.argsort(d[a])
        nn20 = nn20[nn20 != a][:20]
        assert set(s.micro[i].tolist()) <= set(nn20.tolist())
        np.testing.assert_allclose(np.sort(row[s.micro[i].numpy()]), np.sort(row[nn20])[:4], atol=1e-6)
        assert a not in s.macro[i].tolist() and a not in s.micro[i].tolist()
        assert len(set(s.macro[i].tolist())) == 8 and len(set(s.micro[i].tolist())) == 4


def test_sampler_positive_prefers_identical_teacher_and_caps_counts():
    centers = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], np.float32)
    teacher = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.01], [-1.0, 0]])
    s = sample_contrastive(
        teacher,
        centers,
        anchors=10,
        macro_negatives=48,
        micro_negatives=16,
        micro_pool=96,
        generator=torch.Generator().manual_seed(0),
    )
    assert s.anchors.numel() == 4 and s.macro.shape == (4, 3) and s.micro.shape == (4, 3)
    pos = dict(zip(s.anchors.tolist(), s.positives.tolist()))
    assert pos[0] == 2 and pos[2] == 0
    macro = dict(zip(s.anchors.tolist(), s.macro[:, 0].tolist()))
    assert macro[0] == 3 and macro[3] in (0, 2)


def test_sampler_is_reproducible_with_a_seeded_generator():
    centers, teacher = _scene(seed=2)
    a = sample_contrastive(teacher, centers, 32, 4, 2, 8, generator=torch.Generator().manual_seed(7))
    b = sample_contrastive(teacher, centers, 32, 4, 2, 8, generator=torch.Generator().manual_seed(7))
    for f in ("anchors", "positives", "macro", "micro"):
        assert torch.equal(getattr(a, f), getattr(b, f))


def test_info_nce_hand_computed():
    # 2-d unit embeddings at known angles
    ang = torch.tensor([0.0, 1.0, 1.2, 1.5])
    e = torch.stack([ang.cos(), ang.sin()], 1)
    s = ContrastiveSample(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2]]), torch.tensor([[3]]))
    t = 0.07
    logits = [math.cos(1.0) / t, math.cos(1.2) / t, math.cos(1.5) / t]
    expect = -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert expect > 0.05  # not a degenerate case
    assert math.isclose(float(info_nce(e, s, t)), expect, rel_tol=1e-5)
    # scale of the embeddings does not matter (cosine), and the mean over anchors is taken
    s2 = ContrastiveSample(
        torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([[2], [1]]), torch.tensor([[3], [3]])
    )
    second = -logits[1] + math.log(sum(math.exp(x) for x in logits))
    assert math.isclose(float(info_nce(3 * e, s2, t)), (expect + second) / 2, rel_tol=1e-5)


def test_info_nce_gradient_pulls_positive_closer():
    e = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    e.requires_grad_(True)
    s = ContrastiveSample(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2, 3]]), torch.tensor([[4]]))
    loss = info_nce(e, s, 0.07)
    loss.backward()
    with torch.no_grad():
        e2 = torch.nn.functional.normalize(e - 0.01 * e.grad, dim=1)
        before = float(e[0] @ e[1])
        after = float(e2[0] @ e2[1])
    assert after > before


def test_precomputed_table_gives_the_same_sample():
    from geopurify.distill import ContrastiveTable

    centers, teacher = _scene(v=200, seed=4)
    table = ContrastiveTable.build(teacher, centers, 6, 3, 12, chunk=64)
    assert table.positives.shape == (200,) and table.macro.shape == (200, 6) and table.micro.shape == (200, 3)
    a = table.sample(50, torch.Generator().manual_seed(3))
    b = sample_contrastive(teacher, centers, 50, 6, 3, 12, generator=torch.Generator().manual_seed(3))
    for f in ("anchors", "positives", "macro", "micro"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f


def _info_nce_reference(embeddings, sample, temperature=0.07):
    """The loss as first written: fancy indexing and einsum."""
    e = torch.nn.functional.normalize(embeddings, dim=1)
    cand = torch.cat([sample.positives[:, None], sample.macro, sample.micro], dim=1)
    logits = torch.einsum("ae,ake->ak", e[sample.anchors], e[cand]) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(cand), dtype=torch.long))


@pytest.mark.parametrize("chunk", [128, 7])
def test_info_nce_value_and_gradients_match_the_fancy_index_reference(chunk, monkeypatch):
    from geopurify.distill import sampler

    monkeypatch.setattr(sampler, "LOSS_CHUNK", chunk)  # 7: anchors in many pieces, the last one short
    g = torch.Generator().manual_seed(5)
    v, a = 300, 120  # candidates repeat across anchors: the backward must accumulate them
    s = ContrastiveSample(
        torch.randperm(v, generator=g)[:a], torch.randint(0, v, (a,), generator=g),
        torch.randint(0, v, (a, 12), generator=g), torch.randint(0, v, (a, 5), generator=g),
    )
    base = torch.randn(v, 16, generator=g)
    grads = []
    for fn in (info_nce, _info_nce_reference):
        e = base.clone().requires_grad_(True)
        loss = fn(e, s, 0.07)
        loss.backward()
        grads.append((float(loss.detach()), e.grad))
    assert math.isclose(grads[0][0], grads[1][0], rel_tol=1e-6)
    assert grads[1][1].abs().max() > 1e-3
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-7)


def test_table_in_several_knn_blocks_gives_the_same_sample(monkeypatch):
    from geopurify.distill import ContrastiveTable, sampler

    monkeypatch.setattr(sampler, "KNN_BLOCK", 130)  # blocks of 128 anchors, chunks of 64
    centers, teacher = _scene(v=300, seed=6)
    table = ContrastiveTable.build(teacher, centers, 6, 3, 12, chunk=64)
    a = table.sample(300, torch.Generator().manual_seed(3))
    b = sample_contrastive(teacher, centers, 300, 6, 3, 12, generator=torch.Generator().manual_seed(3))
    for f in ("anchors", "positives", "macro", "micro"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f


def test_local_positives_come_from_the_spatial_pool():
    import numpy as np
    import torch

    from geopurify.distill.sampler import sample_contrastive
    from geopurify.geometry import knn

    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 1, (400, 3)).astype(np.float32)
    teacher = torch.from_numpy(rng.standard_normal((400, 8)).astype(np.float32))
    g = torch.Generator().manual_seed(0)
    s = sample_contrastive(teacher, centers, 50, 4, 4, 10, generator=g, local_positives=True)
    nb, _ = knn(centers, centers[s.anchors.numpy()], 11)
    t = torch.nn.functional.normalize(teacher, dim=1)
    for a, p, row in zip(s.anchors.tolist(), s.positives.tolist(), nb):
        pool = [j for j in row.tolist() if j != a][:10]
        assert p in pool and p != a
        assert int(torch.argmax(t[pool] @ t[a])) == pool.index(p)
    g = torch.Generator().manual_seed(0)
    glob = sample_contrastive(teacher, centers, 50, 4, 4, 10, generator=g)
    assert not torch.equal(glob.positives, s.positives)  # the scene-wide positive is elsewhere


def _brute_force_rows(teacher, ids, k):
    """Reference: full (A, V) similarities; positive = argmax, macro = the k smallest, own column excluded."""
    tn = torch.nn.functional.normalize(teacher, dim=1)
    sim = tn[ids] @ tn.T
    rows = torch.arange(len(ids))
    sim[rows, ids] = -torch.inf
    pos = sim.argmax(dim=1)
    sim[rows, ids] = torch.inf
    return sim, pos, torch.sort(sim, dim=1, stable=True).indices[:, :k]


@pytest.mark.parametrize("duplicates", [False, True])
@pytest.mark.parametrize("group,tile", [(4, 16), (16, 32)])  # 16: also the sub-group level (2 columns)
def test_tiled_two_level_scan_equals_brute_force(monkeypatch, duplicates, group, tile):
    """Small groups and tiles (several tiles, padding, pruned groups): the same positives and macro
    negatives as a full argmax / sort; with duplicate teacher rows (ties) the same similarity values."""
    from geopurify.distill import sampler

    monkeypatch.setattr(sampler, "GROUP", group)
    monkeypatch.setattr(sampler, "TILE", tile)
    rng = np.random.default_rng(11)
    v, k = 301, 8  # 301 columns, padded to whole groups and split into tiles; 8 groups kept per row
    base = rng.standard_normal((40 if duplicates else v, 6)).astype(np.float32)
    teacher = torch.from_numpy(base[rng.integers(0, 40, v)] if duplicates else base)
    centers = rng.uniform(0, 1, (v, 3)).astype(np.float32)
    ids = torch.from_numpy(rng.permutation(v)[:100])
    pos, macro, micro = sampler.contrastive_rows(teacher, centers, ids, k, 3, 12, chunk=32)
    sim, ref_pos, ref_macro = _brute_force_rows(teacher, ids, k)
    got = torch.gather(sim, 1, macro)
    assert bool((got[:, 1:] >= got[:, :-1]).all())  # ascending
    torch.testing.assert_close(got, torch.gather(sim, 1, ref_macro), rtol=0, atol=1e-6)
    assert bool((macro != ids[:, None]).all()) and all(len(set(r)) == k for r in macro.tolist())
    torch.testing.assert_close(sim.gather(1, pos[:, None]), sim.gather(1, ref_pos[:, None]), rtol=0, atol=1e-6)
    assert bool((pos != ids).all())
    d = ((centers[ids.numpy()][:, None] - centers[None]) ** 2).sum(-1)
    for i, a in enumerate(ids.tolist()):  # micro: the 3 least similar of the 12 spatial nearest
        nn12 = [j for j in np.argsort(d[i], kind="stable").tolist() if j != a][:12]
        assert set(micro[i].tolist()) <= set(nn12)
        np.testing.assert_allclose(np.sort(sim[i, micro[i]].numpy()), np.sort(sim[i, nn12].numpy())[:3], atol=1e-6)
    if not duplicates:  # no ties: the very same voxels
        assert torch.equal(pos, ref_pos)
        assert torch.equal(macro, ref_macro)


def test_positive_is_a_real_voxel_when_every_similarity_is_negative():
    # three teacher rows 120 degrees apart: every pairwise cosine is -0.5, below the zero similarity of the
    # padding columns that fill the last group; the positive must still be another real voxel
    ang = torch.tensor([0.0, 2.0944, 4.1888])
    teacher = torch.stack([ang.cos(), ang.sin()], 1)
    centers = np.array([[0.0, 0.0, 0.0], [0.02, 0.0, 0.0], [0.04, 0.0, 0.0]], np.float32)
    for s in (sample_contrastive(teacher, centers, 3, 1, 1, 2, generator=torch.Generator().manual_seed(0)),
              ContrastiveTable.build(teacher, centers, 1, 1, 2).sample(3, torch.Generator().manual_seed(0))):
        assert set(s.anchors.tolist()) == {0, 1, 2}
        for a, p, m in zip(s.anchors.tolist(), s.positives.tolist(), s.macro[:, 0].tolist()):
            assert p in {0, 1, 2} - {a} and m in {0, 1, 2} - {a}, (a, p, m)


def test_anchors_spread_over_segments():
    from geopurify.distill.sampler import draw_anchors

    # one segment of 990 voxels and 10 of one voxel: uniform anchors almost never hit the small ones
    segments = torch.cat([torch.zeros(990, dtype=torch.int64), torch.arange(1, 11) * 7])  # ids need not be compact
    a = draw_anchors(1000, 20, torch.Generator().manual_seed(0), segments)
    assert a.shape == (20,) and a.unique().numel() == 20 and a.dtype == torch.int64
    assert torch.equal(a, draw_anchors(1000, 20, torch.Generator().manual_seed(0), segments))
    assert int((a >= 990).sum()) >= 8  # each of the 11 segments is as likely: ~20/11 draws per segment
    uniform = draw_anchors(1000, 20, torch.Generator().manual_seed(0))
    assert int((uniform >= 990).sum()) <= 2
    assert draw_anchors(1000, 2000, torch.Generator().manual_seed(0), segments).numel() == 1000  # capped
    centers, teacher = _scene(v=1000)
    s = sample_contrastive(teacher, centers, 20, 4, 2, 8, generator=torch.Generator().manual_seed(0), segments=segments)
    assert torch.equal(s.anchors, a)
    table = ContrastiveTable.build(teacher, centers, 4, 2, 8)
    assert torch.equal(table.sample(20, torch.Generator().manual_seed(0), segments).anchors, a)


def test_local_targets_and_local_affinity_loss():
    from geopurify.distill.sampler import LocalTargets, local_affinity_loss, local_targets

    centers, teacher = _scene(v=200, t=5)
    anchors = torch.tensor([3, 50, 199])
    lt = local_targets(teacher, centers, anchors, 12)
    assert lt.neighbors.shape == (3, 12) and lt.teacher_sim.shape == (3, 12)
    d = ((centers[:, None] - centers[None]) ** 2).sum(-1)
    tn = torch.nn.functional.normalize(teacher, dim=1)
    for i, a in enumerate(anchors.tolist()):
        near = np.argsort(d[a])
        assert set(lt.neighbors[i].tolist()) == set(near[near != a][:12].tolist())  # the 12 nearest, not itself
        np.testing.assert_allclose(lt.teacher_sim[i], (tn[lt.neighbors[i]] @ tn[a]).numpy(), atol=1e-5)
    # the student that reproduces the teacher's cosines has zero loss; another one does not, and learns
    assert float(local_affinity_loss(teacher, anchors, lt, 20.0)) == pytest.approx(0.0, abs=1e-5)
    emb = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = local_affinity_loss(emb, anchors, lt, 20.0)
    assert float(loss.detach()) > 0.1
    loss.backward()
    assert emb.grad is not None and float(emb.grad[anchors].abs().sum()) > 0
    ref = torch.nn.functional.kl_div(
        torch.log_softmax(20 * (torch.nn.functional.normalize(emb, dim=1)[lt.neighbors]
                                @ torch.nn.functional.normalize(emb, dim=1)[anchors][:, :, None])[:, :, 0], 1),
        torch.softmax(20 * lt.teacher_sim, 1), reduction="batchmean")  # fmt: skip
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-4)
    assert isinstance(lt, LocalTargets)

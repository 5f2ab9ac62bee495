"""User mistakes with `geopurify synth` and `geopurify select`: refused in one line before any work."""

from _fixtures import write_tiny_scannet
from geopurify.cli import main


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    return err[-1]


def test_synth_negative_seed_is_refused_before_any_room(tmp_path, capsys):
    out = tmp_path / "rooms"
    assert main(["synth", str(out), "--seed", "-1"]) == 3
    assert "--seed must be an integer >= 0, got -1" in _err_line(capsys)
    assert not out.exists()
    scan = write_tiny_scannet(tmp_path / "scans", frames=1, n_side=12)
    assert main(["synth", "--from-scan", str(scan), str(tmp_path / "v"), "--seed", "-2"]) == 3
    assert "--seed must be an integer >= 0, got -2" in _err_line(capsys)
    assert not (tmp_path / "v").exists()


def test_select_out_inside_the_dataset_root_is_refused(tmp_path, capsys):
    root = tmp_path / "dataset"
    write_tiny_scannet(root, frames=1, n_side=12)
    for out in (root / "selection", root):
        assert main(["select", str(root), "--n", "1", "--out", str(out)]) == 3
        assert "is the input" in _err_line(capsys)
    assert sorted(p.name for p in root.iterdir()) == ["scene0000_00"]
    assert main(["-q", "select", str(root), "--n", "1", "--out", str(tmp_path / "sel")]) == 0
    assert (tmp_path / "sel" / "selection.txt").read_text().split() == ["scene0000_00"]

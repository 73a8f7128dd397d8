"""Layer application: every entry kind, and every way a layer might escape the rootfs."""

import gzip
import io
import os
import stat

import pytest

from image_helpers import entry, layer_tar
from ocirun.errors import OciError
from ocirun.image.layers import LayerApplier, parse_id_map


@pytest.fixture
def world(tmp_path):
    """A rootfs and, beside it, an `outside` directory no layer may touch."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    os.chmod(outside, 0o700)
    return rootfs, outside


def apply(rootfs, *layers, **kwargs):
    applier = LayerApplier(str(rootfs), **kwargs)
    for i, entries in enumerate(layers):
        applier.apply(io.BytesIO(layer_tar(entries)), f"L{i + 1}")
    return applier


def assert_untouched(outside):
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "precious"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(outside / "victim").st_mode) == 0o644


def refused(rootfs, outside, *layers, layer="L", name=""):
    with pytest.raises(OciError) as info:
        apply(rootfs, *layers)
    message = str(info.value)
    assert message.startswith(f"layer {layer}") and f"entry {name!r}" in message, message
    assert "refusing" in message
    assert_untouched(outside)
    return message


def test_absolute_path(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry(str(outside / "evil"), data=b"x")], layer="L1", name=str(outside / "evil"))


@pytest.mark.parametrize("name", ["../outside/evil", "a/../../outside/evil", "./../outside/victim"])
def test_dotdot(world, name):
    rootfs, outside = world
    refused(rootfs, outside, [entry("a", "dir"), entry(name, data=b"x")], layer="L1", name=name)


@pytest.mark.parametrize("target", ["../outside", "/OUTSIDE"])
def test_write_through_symlink_same_layer(world, target):
    rootfs, outside = world
    target = target.replace("/OUTSIDE", str(outside))
    message = refused(rootfs, outside, [entry("link", "sym", link=target), entry("link/evil", data=b"x")],
                      layer="L1", name="link/evil")
    assert "link is a symlink" in message


def test_write_through_symlink_earlier_layer(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry("link", "sym", link=str(outside))],
            [entry("link/victim", data=b"pwned", mode=0o777)], layer="L2", name="link/victim")


def test_chmod_through_symlink_dot(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry("link", "sym", link=str(outside))],
            [entry("link/.", "dir", mode=0o777)], layer="L2", name="link/.")


def test_write_through_nested_symlink_dot(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry("d", "dir"), entry("d/link", "sym", link=str(outside))],
            [entry("d/link/./victim", data=b"x")], layer="L2", name="d/link/./victim")


def test_whiteout_under_symlink(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry("link", "sym", link=str(outside))],
            [entry("link/.wh.victim")], layer="L2", name="link/.wh.victim")


def test_opaque_under_symlink(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry("link", "sym", link=str(outside))],
            [entry("link/.wh..wh..opq")], layer="L2", name="link/.wh..wh..opq")


def test_hardlink_target_under_symlink(world):
    rootfs, outside = world
    refused(rootfs, outside, [entry("link", "sym", link=str(outside))],
            [entry("stolen", "hard", link="link/victim")], layer="L2", name="stolen")
    assert not (rootfs / "stolen").exists()


@pytest.mark.parametrize("target", ["../outside/victim", "/OUTSIDE/victim"])
def test_hardlink_outside(world, target):
    rootfs, outside = world
    target = target.replace("/OUTSIDE", str(outside))
    refused(rootfs, outside, [entry("stolen", "hard", link=target)], layer="L1", name="stolen")


def test_hardlink_to_symlink_links_the_symlink_itself(world):
    rootfs, outside = world
    apply(rootfs, [entry("sym", "sym", link=str(outside / "victim")), entry("h", "hard", link="sym")])
    assert os.path.islink(rootfs / "h") and os.lstat(rootfs / "h").st_ino == os.lstat(rootfs / "sym").st_ino
    # A later file entry at the same name replaces the link rather than writing through it.
    apply(rootfs, [entry("h", data=b"new", mode=0o777)])
    assert (rootfs / "h").read_bytes() == b"new"
    assert_untouched(outside)


def test_file_replaces_planted_symlink(world):
    rootfs, outside = world
    apply(rootfs, [entry("f", "sym", link=str(outside / "victim"))], [entry("f", data=b"mine", mode=0o666)])
    assert not os.path.islink(rootfs / "f") and (rootfs / "f").read_bytes() == b"mine"
    assert_untouched(outside)


def test_whiteout_of_symlink_removes_only_the_link(world):
    rootfs, outside = world
    apply(rootfs, [entry("link", "sym", link=str(outside))], [entry(".wh.link")])
    assert not os.path.lexists(rootfs / "link")
    assert_untouched(outside)


def test_decompression_bomb(world):
    rootfs, outside = world
    bomb = gzip.compress(layer_tar([entry("zeros", data=b"\0" * (4 << 20))]))
    assert len(bomb) < 64 << 10
    with pytest.raises(OciError, match="decompression bomb"):
        LayerApplier(str(rootfs), max_layer_bytes=1 << 20).apply(io.BytesIO(bomb), "L1")


def test_corrupt_tar(world):
    rootfs, _ = world
    with pytest.raises(OciError, match="layer L1 .*the image is corrupt"):
        LayerApplier(str(rootfs)).apply(io.BytesIO(b"\x1f\x8b" + b"garbage" * 100), "L1")


def test_opaque_marker_anywhere_keeps_this_layers_entries(world):
    rootfs, _ = world
    lower = [entry("d", "dir"), entry("d/old", data=b"o"), entry("d/sub", "dir"), entry("d/sub/old", data=b"o")]
    upper = [entry("d/new", data=b"n"), entry("d/sub/new", data=b"n"), entry("d/.wh..wh..opq"),
             entry("d/after", data=b"a")]
    apply(rootfs, lower, upper)
    assert sorted(os.listdir(rootfs / "d")) == ["after", "new", "sub"]
    assert os.listdir(rootfs / "d/sub") == ["new"]


def test_dir_replaces_file_and_file_replaces_dir(world):
    rootfs, _ = world
    apply(rootfs, [entry("a", data=b"f"), entry("b", "dir"), entry("b/x", data=b"x")],
          [entry("a", "dir"), entry("a/y", data=b"y"), entry("b", data=b"file")])
    assert (rootfs / "a/y").read_bytes() == b"y" and (rootfs / "b").read_bytes() == b"file"


def test_directory_mtimes_survive_their_children(world):
    rootfs, _ = world
    apply(rootfs, [entry("d", "dir", mtime=1_000_000), entry("d/f", data=b"x", mtime=2_000_000)])
    assert os.stat(rootfs / "d").st_mtime == 1_000_000 and os.stat(rootfs / "d/f").st_mtime == 2_000_000


def test_setuid_kept_after_chown(world):
    rootfs, _ = world
    apply(rootfs, [entry("s", data=b"x", mode=0o6755, uid=7, gid=8)])
    st = os.stat(rootfs / "s")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o6755)


def test_id_map_outside_range_is_an_error(world):
    rootfs, _ = world
    with pytest.raises(OciError, match="uid 70000 is outside the --uid-map"):
        apply(rootfs, [entry("f", data=b"x", uid=70000)], uid_map=parse_id_map("0:100000:65536"))


def test_bad_id_map():
    with pytest.raises(OciError, match="containerID:hostID:size"):
        parse_id_map("0:1")


def test_sparse_bomb(world):
    rootfs, _ = world
    info = tarfile_sparse_entry()
    with pytest.raises(OciError, match="decompression bomb"):
        LayerApplier(str(rootfs), max_layer_bytes=1 << 20).apply(io.BytesIO(info), "L1")
    assert not (rootfs / "sparse").exists() or os.path.getsize(rootfs / "sparse") == 0


def tarfile_sparse_entry() -> bytes:
    """A PAX 1.0 sparse file: a few bytes of data that expand to 1 GiB."""
    import tarfile
    data = b"1\n0\n1\n" + b"\0" * (512 - 6) + b"x" + b"\0" * 511
    info = tarfile.TarInfo("GNUSparseFile.0/sparse")
    info.size = len(data)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse",
                        "GNU.sparse.realsize": str(1 << 30)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()

"""Resolving paths inside a root, with openat2 and with the userspace walk (no root needed)."""

import errno
import os
import stat

import pytest

from ocirun.container import safepath


@pytest.fixture(params=["openat2", "walk"])
def root(request, tmp_path):
    safepath.use_openat2(False if request.param == "walk" else None)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "real").write_text("inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real").write_text("outside\n")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield fd, root, outside
    os.close(fd)
    safepath.use_openat2(None)
    assert sorted(os.listdir(outside)) == ["real"], "something was created outside the root"


def read(root_fd, path):
    fd = safepath.open_in_root(root_fd, path, os.O_RDONLY)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def where(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_absolute_symlink_resolves_inside(root):
    fd, path, outside = root
    os.symlink(str(outside), path / "link")
    os.symlink("/etc", path / "abs")
    assert read(fd, "/abs/real") == "inside\n"
    with pytest.raises(FileNotFoundError):
        read(fd, "/link/real")


def test_dotdot_is_clamped_at_the_root(root):
    fd, path, _ = root
    os.symlink("../../../../outside", path / "up")
    os.symlink("../../../..", path / "etc" / "top")
    assert read(fd, "/../../etc/real") == "inside\n"
    assert read(fd, "/etc/top/etc/real") == "inside\n"
    with pytest.raises(FileNotFoundError):
        read(fd, "/up/real")


def test_symlink_loop(root):
    fd, path, _ = root
    os.symlink("b", path / "a")
    os.symlink("a", path / "b")
    with pytest.raises(OSError) as error:
        safepath.open_in_root(fd, "/a/x")
    assert error.value.errno == errno.ELOOP


def test_not_a_directory(root):
    fd, _, _ = root
    with pytest.raises(NotADirectoryError):
        safepath.open_in_root(fd, "/etc/real/x")


def test_no_follow_opens_the_link(root):
    fd, path, outside = root
    os.symlink(str(outside), path / "link")
    assert os.path.islink(where(safepath.open_in_root(fd, "/link", follow=False)))


def test_mkdir_all_follows_dangling_links_inside(root):
    fd, path, outside = root
    os.symlink(str(outside / "new"), path / "dangling")
    os.symlink("../../../..", path / "up")
    made = where(safepath.mkdir_all(fd, "/dangling/a/b"))
    assert made == str(path) + str(outside / "new" / "a" / "b")
    assert where(safepath.mkdir_all(fd, "/up/up/x")) == str(path / "x")


def test_mkdir_all_existing_and_file_in_the_way(root):
    fd, path, _ = root
    assert where(safepath.mkdir_all(fd, "/etc")) == str(path / "etc")
    with pytest.raises(NotADirectoryError):
        safepath.mkdir_all(fd, "/etc/real/x")


def test_create_file(root):
    fd, path, outside = root
    os.symlink(str(outside / "file"), path / "dangling")
    assert where(safepath.create_file(fd, "/dangling")) == str(path) + str(outside / "file")
    assert where(safepath.create_file(fd, "/etc/real")) == str(path / "etc" / "real")
    assert (path / "etc" / "real").read_text() == "inside\n"
    assert where(safepath.create_file(fd, "/new/dir/file")) == str(path / "new" / "dir" / "file")


def test_lstat_in_root(root):
    fd, path, outside = root
    os.symlink(str(outside), path / "proc")
    assert stat.S_ISLNK(safepath.lstat_in_root(fd, "/proc").st_mode)

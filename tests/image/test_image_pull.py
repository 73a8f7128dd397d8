"""End to end against a real docker-registry: pull, verify, unpack, bundle."""

import json
import os
import stat
import subprocess
import sys

import pytest

from ocirun.errors import OciError
from ocirun.image.bundle import build_bundle
from ocirun.image.cli import make_source
from ocirun.image.sources import parse_platform, platform_text

pytestmark = pytest.mark.registry

BFH = os.path.join(os.path.dirname(sys.executable), "bundle-from-hub")


def pull(host, repo, dest, cache, platform=None, **kwargs):
    source = make_source(f"{host}/{repo}", cache, plain_http=True, **{k: kwargs.pop(k) for k in
                                                                      ("username", "password") if k in kwargs})
    return build_bundle(source, str(dest), parse_platform(platform), bool(platform and platform.count("/") == 2),
                        **kwargs)


def test_busybox_bundle(registries, images, tmp_path, cache_dir):
    summary = pull(registries.open.host, "test/busybox", tmp_path / "b", cache_dir)
    assert summary.digest == images.busybox.digest
    assert summary.layers == 2
    rootfs = tmp_path / "b" / "rootfs"
    assert (rootfs / "etc/motd").read_bytes() == b"hello from image\n"
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    spec = json.loads((tmp_path / "b" / "config.json").read_text())
    process = spec["process"]
    assert process["args"] == ["/bin/sh", "-c", "cat /etc/motd; id"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert process["cwd"] == "/home/tester"
    assert process["env"][0].startswith("PATH=") and "GREETING=hi" in process["env"]
    assert process["terminal"] is False
    annotations = spec["annotations"]
    assert annotations["org.opencontainers.image.author"] == "label-wins"
    assert annotations["org.opencontainers.image.exposedPorts"] == "53/udp,80/tcp"
    assert annotations["org.opencontainers.image.stopSignal"] == "SIGTERM"
    assert annotations["org.opencontainers.image.architecture"] == parse_platform(None)["architecture"]
    assert {"destination": "/data", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=755", "tmpcopyup"]} in spec["mounts"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "temporary directory left behind"


def test_config_validates(registries, images, tmp_path, cache_dir):
    try:
        from ocirun.config.validate import validate
    except ImportError:
        pytest.skip("ocirun.config.validate is not there yet (the lead provides it)")
    pull(registries.open.host, "test/busybox", tmp_path / "b", cache_dir)
    validate(json.loads((tmp_path / "b" / "config.json").read_text()))


def test_feature_layers(registries, images, tmp_path, cache_dir):
    pull(registries.open.host, "test/features", tmp_path / "f", cache_dir)
    root = tmp_path / "f" / "rootfs"
    assert sorted(os.listdir(root / "data")) == ["abssym", "hardlink", "keep", "link-target", "relsym"]
    assert os.listdir(root / "opaque") == ["new"]
    assert os.path.islink(root / "replace-dir") and os.readlink(root / "replace-dir") == "data"
    assert not os.path.islink(root / "replace-link") and (root / "replace-link/inside").read_bytes() == b"in"
    assert os.stat(root / "data/hardlink").st_ino == os.stat(root / "data/link-target").st_ino
    assert os.readlink(root / "data/abssym") == "/etc/passwd"
    assert stat.S_IMODE(os.stat(root / "setuid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(root / "setgid-dir").st_mode) == 0o2775
    assert stat.S_IMODE(os.stat(root / "sticky").st_mode) == 0o1777
    st = os.stat(root / "owned")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
    assert st.st_mtime == 1_700_000_000
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert stat.S_ISCHR(os.lstat(root / "dev-null").st_mode)
    from image_helpers import CAP_NET_RAW_XATTR
    assert os.getxattr(root / "cap", "security.capability") == CAP_NET_RAW_XATTR
    assert os.getxattr(root / "cap", "user.note") == b"hello"
    assert (root / "long" / ("d" * 120) / ("f" * 150)).read_bytes() == b"long"
    assert (root / "plain").read_bytes() == b"uncompressed"


def test_uid_map_shifts_owners(registries, images, tmp_path, cache_dir):
    from ocirun.image.layers import parse_id_map
    pull(registries.open.host, "test/features", tmp_path / "f", cache_dir,
         uid_map=parse_id_map("0:100000:65536"), gid_map=parse_id_map("0:200000:65536"))
    st = os.stat(tmp_path / "f" / "rootfs" / "owned")
    assert (st.st_uid, st.st_gid) == (101234, 205678)


def test_platform_selection(registries, images, tmp_path, cache_dir):
    s = pull(registries.open.host, "test/multi", tmp_path / "a", cache_dir, platform="linux/amd64")
    assert (tmp_path / "a/rootfs/arch").read_bytes() == b"amd64" and s.digest == images.amd.digest
    s = pull(registries.open.host, "test/multi", tmp_path / "b", cache_dir, platform="linux/arm64/v8")
    assert (tmp_path / "b/rootfs/arch").read_bytes() == b"arm64" and s.platform == "linux/arm64/v8"
    with pytest.raises(OciError, match=r"no image for linux/s390x .*linux/amd64, linux/arm64/v8"):
        pull(registries.open.host, "test/multi", tmp_path / "c", cache_dir, platform="linux/s390x")
    assert not (tmp_path / "c").exists()


def test_pull_by_digest(registries, images, tmp_path, cache_dir):
    s = pull(registries.open.host, f"test/multi@{images.index_digest}", tmp_path / "a", cache_dir,
             platform="linux/amd64")
    assert s.digest == images.amd.digest


def test_unknown_image_and_tag(registries, images, tmp_path, cache_dir):
    with pytest.raises(OciError, match="test/nothing:latest not found"):
        pull(registries.open.host, "test/nothing", tmp_path / "a", cache_dir)
    with pytest.raises(OciError, match="test/busybox:nope not found"):
        pull(registries.open.host, "test/busybox:nope", tmp_path / "a", cache_dir)
    assert [n for n in os.listdir(tmp_path) if n != "cache"] == []
    assert not (tmp_path / "a").exists()


def test_second_bundle_needs_no_network(registries, images, tmp_path, cache_dir, proxy):
    pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir)
    blob_requests = [r for r in proxy.log if "/blobs/" in r["path"]]
    assert len(blob_requests) == 3  # config and two layers
    proxy.log.clear()
    pull(proxy.host, f"test/busybox@{images.busybox.digest}", tmp_path / "b", cache_dir)
    assert [r for r in proxy.log if "/blobs/" in r["path"]] == []


def test_existing_destination_refused_unless_force(registries, images, tmp_path, cache_dir):
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "old").write_text("x")
    with pytest.raises(OciError, match="already exists.*--force"):
        pull(registries.open.host, "test/busybox", dest, cache_dir)
    pull(registries.open.host, "test/busybox", dest, cache_dir, force=True)
    assert not (dest / "old").exists() and (dest / "config.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["b", "cache"]


def test_command_override_and_tty(registries, images, tmp_path, cache_dir):
    pull(registries.open.host, "test/busybox", tmp_path / "b", cache_dir, command=["echo", "hi"], tty=True)
    process = json.loads((tmp_path / "b" / "config.json").read_text())["process"]
    assert process["args"] == ["echo", "hi"] and process["terminal"] is True


def test_cli_summary_and_cache_commands(registries, images, tmp_path, cache_dir):
    result = subprocess.run([BFH, f"{registries.open.host}/test/busybox", str(tmp_path / "b"), "--plain-http",
                             "--cache", cache_dir], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"digest:    {images.busybox.digest}" in result.stdout
    assert f"platform:  {platform_text(parse_platform(None))}\n" in result.stdout and "layers:    2" in result.stdout
    assert "layer 1/2" in result.stderr  # plain progress lines when not on a terminal
    result = subprocess.run([BFH, f"{registries.open.host}/test/busybox", str(tmp_path / "b"), "--plain-http",
                             "--cache", cache_dir, "-q"], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "already exists" in result.stderr
    shown = subprocess.run([BFH, "cache", "show", "--cache", cache_dir], capture_output=True, text=True)
    assert "3 blobs" in shown.stdout
    pruned = subprocess.run([BFH, "cache", "prune", "--cache", cache_dir], capture_output=True, text=True)
    assert "removed 3 files" in pruned.stdout
    assert os.listdir(os.path.join(cache_dir, "blobs", "sha256")) == []


def test_cli_unreachable_registry(tmp_path, cache_dir):
    from image_servers import free_port
    result = subprocess.run([BFH, f"127.0.0.1:{free_port()}/x/y", str(tmp_path / "b"), "--plain-http",
                             "--cache", cache_dir], capture_output=True, text=True, timeout=120,
                            env={**os.environ})
    assert result.returncode == 1
    assert result.stderr.startswith("bundle-from-hub: cannot reach") and result.stderr.count("\n") == 1
    assert not (tmp_path / "b").exists()


def test_concurrent_pulls_share_the_cache(registries, images, tmp_path, cache_dir):
    procs = [subprocess.Popen([BFH, f"{registries.open.host}/test/features", str(tmp_path / f"b{i}"),
                               "--plain-http", "--cache", cache_dir, "-q"], stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for i in range(4):
        assert (tmp_path / f"b{i}/rootfs/plain").read_bytes() == b"uncompressed"
    assert os.listdir(os.path.join(cache_dir, "tmp")) == []
    assert len(os.listdir(os.path.join(cache_dir, "blobs", "sha256"))) == 4


def test_cli_password_stdin(registries, images, tmp_path, cache_dir):
    from image_servers import PASSWORD, USER
    result = subprocess.run([BFH, f"{registries.basic.host}/test/busybox", str(tmp_path / "b"), "--plain-http",
                             "--cache", cache_dir, "--username", USER, "--password-stdin", "-q"],
                            input=PASSWORD + "\n", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([BFH, f"{registries.basic.host}/test/busybox", str(tmp_path / "c"), "--plain-http",
                             "--cache", cache_dir, "--username", USER, "--password-stdin"],
                            input="wrong\n", capture_output=True, text=True)
    assert result.returncode == 1 and "refused access" in result.stderr and result.stderr.count("\n") == 1


def test_tty_progress_bars(registries, images, tmp_path, cache_dir):
    cmd = (f"{BFH} {registries.open.host}/test/busybox {tmp_path / 'b'} --plain-http --cache {cache_dir}")
    result = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "\x1b[2K" in result.stdout and "[" + "#" * 30 + "]" in result.stdout and "applied" in result.stdout


@pytest.mark.root
def test_no_space_left(registries, images, tmp_path, cache_dir):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "ocirun-test-image", str(small)], check=True)
    try:
        result = subprocess.run([BFH, f"{registries.open.host}/test/busybox", str(small / "b"), "--plain-http",
                                 "--cache", cache_dir, "-q"], capture_output=True, text=True)
        assert result.returncode == 1 and "no space left" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_hostile_image_from_registry(registries, images, tmp_path, cache_dir):
    from image_helpers import Image, entry, push_image
    hostile = Image([[entry("escape", "sym", link="/")], ([entry("escape/tmp/pwned", data=b"x")], "zstd")],
                    config={"Cmd": ["x"]})
    push_image(registries.open.url, "test/hostile", "latest", hostile)
    with pytest.raises(OciError, match=r"layer 2/2 \(sha256:.*\): entry 'escape/tmp/pwned': escape is a "
                                       r"symlink.*refusing it"):
        pull(registries.open.host, "test/hostile", tmp_path / "h", cache_dir)
    assert not os.path.exists("/tmp/pwned")
    assert sorted(os.listdir(tmp_path)) == ["cache"]


def test_cli_command_after_double_dash(registries, images, tmp_path, cache_dir):
    result = subprocess.run([BFH, f"{registries.open.host}/test/busybox", str(tmp_path / "b"), "--plain-http",
                             "--cache", cache_dir, "-q", "--", "sh", "-c", "echo hi"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "b/config.json").read_text())["process"]["args"] == ["sh", "-c", "echo hi"]


def test_loopback_registry_falls_back_to_plain_http(registries, images, tmp_path, cache_dir):
    from ocirun.image.bundle import build_bundle
    from ocirun.image.cli import make_source
    source = make_source(f"{registries.open.host}/test/busybox", cache_dir)
    build_bundle(source, str(tmp_path / "b"), parse_platform(None))
    assert (tmp_path / "b/rootfs/etc/motd").exists()


def test_sigterm_leaves_nothing_half_written(registries, images, proxy, tmp_path, cache_dir):
    import time
    digest = images.busybox.layers[0]["digest"]
    proxy.faults[digest] = ["stall"]
    p = subprocess.Popen([BFH, f"{proxy.host}/test/busybox", str(tmp_path / "b"), "--plain-http",
                          "--cache", cache_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not any(r["path"].endswith(digest) for r in proxy.log):
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    p.terminate()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and err.endswith("interrupted; nothing was written\n"), err
    assert sorted(os.listdir(tmp_path)) == ["cache"]
    assert os.listdir(os.path.join(cache_dir, "tmp")) == []

"""Unit tests: reference parsing, digest validation, platforms, image config conversion."""

import os

import pytest

from ocirun.errors import OciError
from ocirun.image.imageconfig import resolve_in_root, resolve_user, runtime_config
from ocirun.image.reference import parse_reference, validate_digest
from ocirun.image.sources import parse_platform, select_from_index

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,expected", [
    ("alpine", ("docker.io", "library/alpine", "latest", None)),
    ("alpine:3.19", ("docker.io", "library/alpine", "3.19", None)),
    ("user/img:tag", ("docker.io", "user/img", "tag", None)),
    ("docker.io/library/alpine", ("docker.io", "library/alpine", "latest", None)),
    ("index.docker.io/alpine", ("docker.io", "library/alpine", "latest", None)),
    (f"ghcr.io/org/img@{D}", ("ghcr.io", "org/img", None, D)),
    (f"ghcr.io/org/img:v1@{D}", ("ghcr.io", "org/img", "v1", D)),
    ("localhost:5000/img", ("localhost:5000", "img", "latest", None)),
    ("localhost/img:1", ("localhost", "img", "1", None)),
    ("127.0.0.1:5000/a/b/c:x", ("127.0.0.1:5000", "a/b/c", "x", None)),
    ("docker://quay.io/a/b", ("quay.io", "a/b", "latest", None)),
])
def test_parse_reference(text, expected):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("text", ["", "Alpine", "a//b", "img:", "img:-bad", "img@sha256:1234",
                                  "img@md5:" + "a" * 32, "ghcr.io/a/b@sha256:" + "A" * 64, "-x/y"])
def test_bad_reference(text):
    with pytest.raises(OciError):
        parse_reference(text)


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "sha256:" + "a" * 63, "sha512:" + "a" * 64,
                                    "sha256/" + "a" * 64, "sha1:" + "a" * 40, None])
def test_bad_digests_never_reach_a_path(digest):
    from ocirun.image.cache import BlobCache
    with pytest.raises(OciError):
        BlobCache("/nonexistent").path(digest)


def test_good_digests():
    assert validate_digest(D) == D
    assert validate_digest("sha512:" + "0" * 128)


def test_platform_parse_and_select():
    assert parse_platform("linux/arm64/v8") == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert parse_platform(None)["os"] == "linux"
    with pytest.raises(OciError, match="os/arch"):
        parse_platform("linux")
    index = {"manifests": [
        {"digest": "a", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "b", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "c", "platform": {"os": "unknown", "architecture": "unknown"}}]}
    assert select_from_index(index, parse_platform("linux/arm/v7"), True, "x")["digest"] == "b"
    assert select_from_index(index, {"os": "linux", "architecture": "arm", "variant": "v7"}, False, "x")["digest"] == "b"
    with pytest.raises(OciError, match=r"no image for linux/amd64 \(it has: linux/arm/v6, linux/arm/v7\)"):
        select_from_index(index, parse_platform("linux/amd64"), False, "x")


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:100:101::/app:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:101:\nstaff:x:50:app,bob\ndocker:x:60:app\n")
    return root


def test_user_resolution(rootfs):
    assert resolve_user(str(rootfs), "app") == {"uid": 100, "gid": 101, "additionalGids": [50, 60]}
    assert resolve_user(str(rootfs), "app:staff") == {"uid": 100, "gid": 50, "additionalGids": [60]}
    assert resolve_user(str(rootfs), "100") == {"uid": 100, "gid": 101, "additionalGids": [50, 60]}
    assert resolve_user(str(rootfs), "4242:7") == {"uid": 4242, "gid": 7}
    with pytest.raises(OciError, match="no user 'nobody'"):
        resolve_user(str(rootfs), "nobody")
    with pytest.raises(OciError, match="no group 'nogroup'"):
        resolve_user(str(rootfs), "app:nogroup")


def test_passwd_symlinked_outside_is_read_inside(rootfs, tmp_path):
    os.rename(rootfs / "etc/passwd", rootfs / "etc/real-passwd")
    os.symlink("/../../../../etc/real-passwd", rootfs / "etc/passwd")
    assert resolve_user(str(rootfs), "app")["uid"] == 100


def test_resolve_in_root_stays_inside(rootfs):
    os.symlink("/../../..", rootfs / "up")
    assert resolve_in_root(str(rootfs), "/up/etc/passwd") == "/etc/passwd"


@pytest.mark.parametrize("cwd", ["/proc/self/fd/7", "/proc/1/cwd", "/sys/kernel", "/link/fd/3"])
def test_working_dir_into_proc_refused(rootfs, cwd):
    os.symlink("/proc/self", rootfs / "link")
    with pytest.raises(OciError, match="WorkingDir"):
        runtime_config({"config": {"Cmd": ["x"], "WorkingDir": cwd}}, str(rootfs))


def test_conversion(rootfs):
    image = {"os": "linux", "architecture": "amd64", "author": "me", "created": "2024-01-01T00:00:00Z",
             "config": {"Entrypoint": ["/entry"], "Cmd": ["--flag"], "Env": ["A=1", "B=2"],
                        "WorkingDir": "/app", "User": "app", "StopSignal": "SIGQUIT",
                        "ExposedPorts": {"8080/tcp": {}}, "Volumes": {"/cache": {}, "/proc": {}},
                        "Labels": {"org.opencontainers.image.author": "label", "x": "y"}}}
    spec = runtime_config(image, str(rootfs))
    p = spec["process"]
    assert p["args"] == ["/entry", "--flag"]
    assert p["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=2"]
    assert p["cwd"] == "/app" and p["user"]["uid"] == 100 and p["terminal"] is False
    assert spec["annotations"] == {
        "org.opencontainers.image.os": "linux", "org.opencontainers.image.architecture": "amd64",
        "org.opencontainers.image.author": "label", "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        "org.opencontainers.image.stopSignal": "SIGQUIT", "org.opencontainers.image.exposedPorts": "8080/tcp",
        "x": "y"}
    cache_mount = [m for m in spec["mounts"] if m["destination"] == "/cache"][0]
    assert cache_mount["type"] == "tmpfs" and "tmpcopyup" in cache_mount["options"]
    assert len([m for m in spec["mounts"] if m["destination"] == "/proc"]) == 1
    assert spec["linux"]["namespaces"] and spec["linux"]["maskedPaths"]
    override = runtime_config(image, str(rootfs), command=["sh"], tty=True)["process"]
    assert override["args"] == ["/entry", "sh"] and override["terminal"] is True
    assert "TERM=xterm" in override["env"]


def test_image_path_kept_and_missing_command_refused(rootfs):
    spec = runtime_config({"config": {"Cmd": ["x"], "Env": ["PATH=/opt/bin"]}}, str(rootfs))
    assert spec["process"]["env"] == ["PATH=/opt/bin"]
    with pytest.raises(OciError, match="neither Entrypoint nor Cmd"):
        runtime_config({"config": {}}, str(rootfs))


def test_schema1_and_malformed_manifests_refused():
    from ocirun.image.sources import check_manifest
    with pytest.raises(OciError, match="schema 1 manifest, which is not supported"):
        check_manifest({"schemaVersion": 1, "fsLayers": []},
                       "application/vnd.docker.distribution.manifest.v1+prettyjws", "x")
    with pytest.raises(OciError, match="lacks config or layers"):
        check_manifest({"schemaVersion": 2}, "application/vnd.oci.image.manifest.v1+json", "x")
    with pytest.raises(OciError, match="algorithm:hex"):
        check_manifest({"schemaVersion": 2, "config": {"digest": "../../x", "size": 1}, "layers": []},
                       "application/vnd.oci.image.manifest.v1+json", "x")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_verifying_reader(algorithm):
    import hashlib
    import io
    from ocirun.image.cache import VerifyingReader
    data = b"blob" * 1000
    digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    VerifyingReader(io.BytesIO(data), digest, len(data), "b").drain()
    with pytest.raises(OciError, match="content has digest"):
        VerifyingReader(io.BytesIO(data[:-1] + b"X"), digest, len(data), "b").drain()
    with pytest.raises(OciError, match="got 3999 bytes, the manifest declares 4000"):
        VerifyingReader(io.BytesIO(data[:-1]), digest, len(data), "b").drain()
    with pytest.raises(OciError, match="more than the 10 bytes"):
        VerifyingReader(io.BytesIO(data), digest, 10, "b").drain()

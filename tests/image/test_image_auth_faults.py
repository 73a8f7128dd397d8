"""Token auth like Docker Hub's, htpasswd Basic auth, auth files, and network faults."""

import base64
import json
import os

import pytest

from image_servers import PASSWORD, USER
from ocirun.errors import OciError
from ocirun.image.registry import load_credentials
from test_image_pull import pull

pytestmark = pytest.mark.registry


def test_token_anonymous_pull_and_token_reuse(registries, images, tmp_path, cache_dir):
    registries.tokens.requests.clear()
    pull(registries.token.host, "public/busybox", tmp_path / "a", cache_dir)
    assert (tmp_path / "a/rootfs/etc/motd").exists()
    # One token for the repository scope serves the manifest and every blob.
    assert len(registries.tokens.requests) == 1
    assert registries.tokens.requests[0] == {"user": None, "scope": ["repository:public/busybox:pull"],
                                             "service": ["test-registry"]}


def test_token_refreshed_when_expired_or_rejected(registries, images):
    from ocirun.image.registry import RegistryClient
    client = RegistryClient(registries.token.host, plain_http=True)
    registries.tokens.requests.clear()
    client.get_manifest("public/busybox", "latest")
    assert len(registries.tokens.requests) == 1
    # Expired: a new token is fetched before the request goes out.
    client._tokens = {key: (token, 0) for key, (token, _) in client._tokens.items()}
    client.get_manifest("public/busybox", "latest")
    assert len(registries.tokens.requests) == 2
    # Rejected by the registry (revoked, clock skew): fetched again and retried.
    client._tokens = {key: ("garbage", expiry) for key, (_, expiry) in client._tokens.items()}
    client.get_manifest("public/busybox", "latest")
    assert len(registries.tokens.requests) == 3


def test_token_private_needs_credentials(registries, images, tmp_path, cache_dir):
    with pytest.raises(OciError, match="refused access|not found"):
        pull(registries.token.host, "test/busybox", tmp_path / "a", cache_dir)
    registries.tokens.requests.clear()
    pull(registries.token.host, "test/busybox", tmp_path / "b", cache_dir, username=USER, password=PASSWORD)
    assert registries.tokens.requests[0]["user"] == USER
    with pytest.raises(OciError, match="token server refused the credentials"):
        pull(registries.token.host, "test/busybox", tmp_path / "c", cache_dir, username=USER, password="wrong")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_basic_auth(registries, images, tmp_path, cache_dir):
    with pytest.raises(OciError, match="needs a login"):
        pull(registries.basic.host, "test/busybox", tmp_path / "a", cache_dir)
    pull(registries.basic.host, "test/busybox", tmp_path / "b", cache_dir, username=USER, password=PASSWORD)
    assert (tmp_path / "b/rootfs/etc/motd").exists()
    with pytest.raises(OciError, match="refused access"):
        pull(registries.basic.host, "test/busybox", tmp_path / "c", cache_dir, username=USER, password="nope")


def _auth_file(path, host, user, password):
    path.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))


def test_credentials_from_files(tmp_path, monkeypatch):
    (tmp_path / "docker").mkdir()
    _auth_file(tmp_path / "docker" / "config.json", "https://index.docker.io/v1/", "hub", "pw")
    env = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker")}
    c = load_credentials("docker.io", environ=env)
    assert (c.username, c.password) == ("hub", "pw")
    _auth_file(tmp_path / "auth.json", "registry.example", "podman", "pw2")
    c = load_credentials("registry.example", environ={**env, "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")})
    assert (c.username, c.password) == ("podman", "pw2")
    assert not load_credentials("other.example", environ=env)
    assert load_credentials("docker.io", "cli", "x", environ=env).username == "cli"


def test_basic_auth_from_docker_config(registries, images, tmp_path, cache_dir, monkeypatch):
    (tmp_path / "d").mkdir()
    _auth_file(tmp_path / "d" / "config.json", registries.basic.host, USER, PASSWORD)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    pull(registries.basic.host, "test/busybox", tmp_path / "b", cache_dir)
    assert (tmp_path / "b/rootfs/etc/motd").exists()


def _layer_key(images, i=0):
    return images.busybox.layers[i]["digest"]


def test_retries_on_500(registries, images, proxy, tmp_path, cache_dir):
    proxy.faults["manifest"] = ["500", "500"]
    proxy.faults[_layer_key(images)] = ["500"]
    pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir)
    assert (tmp_path / "a/rootfs/etc/motd").exists()


def test_persistent_500_is_an_error(registries, images, proxy, tmp_path, cache_dir):
    proxy.faults["manifest"] = ["500"] * 10
    with pytest.raises(OciError, match="answered 500"):
        pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir)


def test_cut_connection_resumes_with_range(registries, images, proxy, tmp_path, cache_dir):
    digest = _layer_key(images)
    proxy.faults[digest] = ["cut"]
    pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir)
    ranges = [r["range"] for r in proxy.log if r["path"].endswith(digest)]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) > 0
    assert os.path.getsize(tmp_path / "a/rootfs/bin/busybox") == os.path.getsize("/bin/busybox")


def test_wrong_digest_refused_and_cache_not_poisoned(registries, images, proxy, tmp_path, cache_dir):
    digest = _layer_key(images)
    proxy.faults[digest] = ["corrupt"]
    with pytest.raises(OciError, match=f"content has digest .*expected {digest}"):
        pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir)
    assert not (tmp_path / "a").exists()
    assert sorted(os.listdir(tmp_path)) == ["cache"]
    assert not os.path.exists(os.path.join(cache_dir, "blobs", *digest.split(":")))
    assert os.listdir(os.path.join(cache_dir, "tmp")) == []
    pull(proxy.host, "test/busybox", tmp_path / "b", cache_dir)
    assert os.path.exists(os.path.join(cache_dir, "blobs", *digest.split(":")))


def test_corrupted_cache_entry_is_refused_and_evicted(registries, images, tmp_path, cache_dir):
    pull(registries.open.host, "test/busybox", tmp_path / "a", cache_dir)
    digest = _layer_key(images, 1)
    path = os.path.join(cache_dir, "blobs", *digest.split(":"))
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(OciError, match="cached at .*now removed"):
        pull(registries.open.host, "test/busybox", tmp_path / "b", cache_dir)
    assert not os.path.exists(path) and not (tmp_path / "b").exists()


def test_rate_limit_explained(registries, images, proxy, tmp_path, cache_dir):
    proxy.faults["manifest"] = ["429"]
    with pytest.raises(OciError, match=r"rate-limiting.*limit 100;w=21600, remaining 0;w=21600, "
                                       r"retry after 3600s.*--mirror"):
        pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir)


def test_redirect_to_cdn_without_authorization(registries, images, proxy, tmp_path, cache_dir):
    proxy.upstream = registries.token.url
    proxy.cdn_server.repo = "test/busybox"
    digest = _layer_key(images)
    proxy.faults[digest] = ["redirect"]
    pull(proxy.host, "test/busybox", tmp_path / "a", cache_dir, username=USER, password=PASSWORD)
    assert any(r["auth"] for r in proxy.log)  # the registry itself got the bearer token
    assert proxy.cdn_server.log and all(r["auth"] is None for r in proxy.cdn_server.log)
    assert "signature=xyz" in proxy.cdn_server.log[0]["path"]


def test_mirror_used_for_docker_hub(registries, images, proxy, tmp_path, cache_dir):
    from ocirun.image.bundle import build_bundle
    from ocirun.image.cli import make_source
    from ocirun.image.sources import parse_platform
    # "test/busybox" on docker.io resolves to the mirror, which holds it under the same name.
    source = make_source("test/busybox", cache_dir, mirrors=[f"http://{proxy.host}"])
    build_bundle(source, str(tmp_path / "a"), parse_platform(None))
    assert any(r["path"] == "/v2/test/busybox/manifests/latest" for r in proxy.log)


def test_foreign_layer_urls_get_no_credentials(registries, images, proxy):
    from ocirun.image.registry import Credentials, RegistryClient
    proxy.cdn_server.repo = "test/busybox"
    client = RegistryClient(registries.basic.host, Credentials(USER, PASSWORD), plain_http=True)
    client.get_manifest("test/busybox", "latest")  # the client now sends Basic auth to the registry
    layer = dict(images.busybox.layers[1])
    layer["urls"] = [f"{proxy.cdn}/cdn/{layer['digest']}"]
    response = client.blob_url_fetch("test/busybox", layer)
    assert response.content == images.busybox.blobs[layer["digest"]]
    assert proxy.cdn_server.log == [{"path": f"/cdn/{layer['digest']}", "auth": None}]


def test_manifest_by_digest_verified(registries, images, proxy, tmp_path, cache_dir):
    proxy.faults["manifest"] = ["corrupt"]
    with pytest.raises(OciError, match="has digest .*the registry served wrong data"):
        pull(proxy.host, f"test/busybox@{images.busybox.digest}", tmp_path / "a", cache_dir)
    assert not (tmp_path / "a").exists()

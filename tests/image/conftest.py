import os
import shutil
import tempfile
from types import SimpleNamespace

import pytest

from image_servers import (CdnHandler, ProxyHandler, Registry, TokenHandler, ISSUER, SERVICE, USER,
                           PASSWORD, make_signing_key, serve)


@pytest.fixture(scope="module")
def registries():
    """Three docker-registry processes sharing one storage: open, token auth, htpasswd.

    Module-scoped so they are gone before the suite-wide leak check runs.

    Images are pushed through the open one; the others serve the same content.
    """
    import bcrypt
    workdir = tempfile.mkdtemp(prefix="ocirun-test-image-registry.")
    storage = os.path.join(workdir, "storage")
    started = []
    servers = []
    try:
        key, cert, cert_path = make_signing_key(workdir)
        tokens = serve(TokenHandler, key=key, cert=cert, requests=[], lifetime=300)
        servers.append(tokens)
        htpasswd = os.path.join(workdir, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
        open_registry = Registry(workdir, "open", storage)
        started.append(open_registry)
        token_registry = Registry(workdir, "token", storage, {"token": {
            "realm": f"http://127.0.0.1:{tokens.server_address[1]}/token", "service": SERVICE,
            "issuer": ISSUER, "rootcertbundle": cert_path}})
        started.append(token_registry)
        basic_registry = Registry(workdir, "basic", storage, {"htpasswd": {"realm": "basic-realm",
                                                                           "path": htpasswd}})
        started.append(basic_registry)
        yield SimpleNamespace(open=open_registry, token=token_registry, basic=basic_registry,
                              tokens=tokens, workdir=workdir)
    finally:
        for registry in started:
            registry.stop()
        for server in servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def proxy(registries):
    """A fault-injecting proxy in front of the open registry (or another upstream)."""
    cdn = serve(CdnHandler, log=[], origin=registries.open.url, repo="")
    server = serve(ProxyHandler, upstream=registries.open.url, faults={}, log=[],
                   cdn=f"http://localhost:{cdn.server_address[1]}")
    server.host = f"127.0.0.1:{server.server_address[1]}"
    server.cdn_server = cdn
    yield server
    for s in (server, cdn):
        s.shutdown()
        s.server_close()


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture(scope="module")
def images(registries):
    from image_helpers import Image, busybox_entries, entry, feature_layers, push_image, push_index
    base = registries.open.url
    busybox = Image([(busybox_entries(), "gzip"),
                     ([entry("etc/motd", data=b"hello from image\n")], "zstd")],
                    config={"Cmd": ["/bin/sh", "-c", "cat /etc/motd; id"], "User": "tester",
                            "WorkingDir": "/home/tester", "Env": ["GREETING=hi"],
                            "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "StopSignal": "SIGTERM",
                            "Volumes": {"/data": {}}},
                    labels={"org.opencontainers.image.author": "label-wins"})
    push_image(base, "test/busybox", "latest", busybox)
    push_image(base, "public/busybox", "latest", busybox)
    features = Image(feature_layers(), config={"Cmd": ["/bin/true"]})
    push_image(base, "test/features", "latest", features)
    arm = Image([[entry("arch", data=b"arm64")]], config={"Cmd": ["/arch"]}, arch="arm64", variant="v8")
    amd = Image([[entry("arch", data=b"amd64")]], config={"Cmd": ["/arch"]}, arch="amd64")
    index_digest = push_index(base, "test/multi", "latest", [amd, arm])
    return SimpleNamespace(busybox=busybox, features=features, arm=arm, amd=amd, index_digest=index_digest)

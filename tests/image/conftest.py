import os
import shutil
import tempfile
from types import SimpleNamespace

import pytest

from image_servers import (CdnHandler, ProxyHandler, Registry, TokenHandler, ISSUER, SERVICE, USER,
                           PASSWORD, make_signing_key, serve)


@pytest.fixture(scope="session")
def registries():
    """Three docker-registry processes sharing one storage: open, token auth, htpasswd.

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


CAP_NET_RAW_XATTR = bytes.fromhex("0000000200200000000000000000000000000000")  # v2, permitted net_raw


def busybox_entries():
    from image_helpers import entry
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    return [entry("bin", "dir"), entry("bin/busybox", data=busybox, mode=0o755),
            entry("bin/sh", "sym", link="busybox"), entry("bin/echo", "sym", link="busybox"),
            entry("bin/id", "sym", link="busybox"), entry("bin/cat", "sym", link="busybox"),
            entry("etc", "dir"),
            entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n"),
            entry("etc/group", data=b"root:x:0:\ntester:x:1000:\nwheel:x:10:tester\naudio:x:29:other,tester\n"),
            entry("home", "dir"), entry("home/tester", "dir", uid=1000, gid=1000),
            entry("tmp", "dir", mode=0o1777)]


def feature_layers():
    """Layers exercising every kind of entry, whiteouts and opaque directories."""
    from image_helpers import entry
    first = [entry("data", "dir"), entry("data/keep", data=b"keep"), entry("data/gone", data=b"x"),
             entry("data/gonedir", "dir"), entry("data/gonedir/f", data=b"x"),
             entry("opaque", "dir"), entry("opaque/old", data=b"old"), entry("opaque/sub", "dir"),
             entry("opaque/sub/old2", data=b"old"),
             entry("replace-dir", "dir"), entry("replace-dir/f", data=b"x"),
             entry("replace-link", "sym", link="data"),
             entry("setuid", data=b"#!", mode=0o4755), entry("setgid-dir", "dir", mode=0o2775),
             entry("sticky", "dir", mode=0o1777),
             entry("owned", data=b"o", uid=1234, gid=5678, mode=0o640)]
    second = [entry("data/.wh.gone"), entry("data/.wh.gonedir"),
              entry("opaque/new", data=b"new"), entry("opaque/.wh..wh..opq"),
              entry("replace-dir", "sym", link="data"),
              entry("replace-link", "dir"), entry("replace-link/inside", data=b"in"),
              entry("data/link-target", data=b"shared"), entry("data/hardlink", "hard", link="data/link-target"),
              entry("data/relsym", "sym", link="../data/keep"), entry("data/abssym", "sym", link="/etc/passwd"),
              entry("fifo", "fifo"), entry("dev-null", "chr", major=1, minor=3, mode=0o666),
              entry("cap", data=b"c", mode=0o755, xattrs={"security.capability": CAP_NET_RAW_XATTR,
                                                          "user.note": b"hello"}),
              entry("long/" + "d" * 120 + "/" + "f" * 150, data=b"long")]
    third = [entry("plain", data=b"uncompressed")]
    return [(first, "gzip"), (second, "zstd"), (third, None)]


@pytest.fixture(scope="session")
def images(registries):
    from image_helpers import Image, entry, push_image, push_index
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

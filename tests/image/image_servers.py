"""The servers the image tests talk to: Debian's docker-registry in three auth
modes, a JWT token server like Docker Hub's, a fault-injecting proxy and a
"CDN" that blob redirects point to."""

import base64
import datetime
import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid

import requests

SERVICE = "test-registry"
ISSUER = "test-issuer"
USER, PASSWORD = "alice", "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Dropped connections are what the fault tests cause; stay quiet."""


def serve(handler_class, **attrs):
    server = _Server(("127.0.0.1", 0), handler_class)
    for key, value in attrs.items():
        setattr(server, key, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def make_signing_key(directory):
    """An RSA key and a self-signed certificate the registry trusts for tokens."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocirun-test-token")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = os.path.join(directory, "token-cert.pem")
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


class TokenHandler(http.server.BaseHTTPRequestHandler):
    """Issues registry tokens: anonymous pulls of public/*, everything for alice."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                self.send_response(401)
                self.end_headers()
                return
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user or name.startswith("public/"):
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        server = self.server
        server.requests.append({"user": user, "scope": query.get("scope"), "service": query.get("service")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + server.lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        der = server.cert.public_bytes(serialization.Encoding.DER)
        head = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64url(json.dumps(head).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = server.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        body = json.dumps({"token": f"{signing_input}.{_b64url(signature)}",
                           "expires_in": server.lifetime}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    """Forwards to `server.upstream`, injecting faults listed in `server.faults`.

    faults maps a blob digest (or "manifest") to a list of actions used up one
    per request: "500", "429", "cut" (send half the body, then drop the
    connection), "corrupt" (flip a byte), "redirect" (307 to the CDN), "stall" (wait 3 s first).
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.log.append({"path": self.path, "range": self.headers.get("Range"),
                           "auth": self.headers.get("Authorization")})
        key = self.path.rsplit("/", 1)[-1] if "/blobs/" in self.path else "manifest"
        actions = server.faults.get(key) or []
        action = actions.pop(0) if actions else None
        if action in ("500", "429"):
            body = b"{}"
            self.send_response(int(action))
            if action == "429":
                self.send_header("RateLimit-Limit", "100;w=21600")
                self.send_header("RateLimit-Remaining", "0;w=21600")
                self.send_header("Retry-After", "3600")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if action == "stall":
            time.sleep(3)
        if action == "redirect":
            self.send_response(307)
            self.send_header("Location", f"{server.cdn}/cdn/{key}?signature=xyz")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = urllib.parse.urlsplit(server.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request("GET", self.path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if action == "cut":
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == "corrupt" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


class CdnHandler(http.server.BaseHTTPRequestHandler):
    """Serves blobs by digest straight from the open registry, recording what it was sent."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        digest = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
        self.server.log.append({"path": self.path, "auth": self.headers.get("Authorization")})
        r = requests.get(f"{self.server.origin}/v2/{self.server.repo}/blobs/{digest}")
        self.send_response(r.status_code)
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)


def registry_config(storage: str, port: int, auth: dict | None) -> str:
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {storage}",
             "  delete:", "    enabled: true", "http:", f"  addr: 127.0.0.1:{port}"]
    if auth:
        lines.append("auth:")
        for kind, params in auth.items():
            lines.append(f"  {kind}:")
            lines += [f"    {k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


class Registry:
    def __init__(self, workdir: str, name: str, storage: str, auth: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        config = os.path.join(workdir, f"{name}.yml")
        with open(config, "w") as f:
            f.write(registry_config(storage, self.port, auth))
        self.log = open(os.path.join(workdir, f"{name}.log"), "wb")
        self.process = subprocess.Popen(["/usr/bin/docker-registry", "serve", config],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{self.url}/v2/", timeout=1)
                break
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"docker-registry ({name}) did not start; see {self.log.name}")
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

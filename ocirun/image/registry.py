"""A client for the registry v2 API, as Docker Hub and every OCI registry speak it.

Authentication follows the challenge flow: an unauthenticated request gets a
401 whose WWW-Authenticate header says either Basic (send the credentials) or
Bearer realm/service/scope (fetch a token from the realm, anonymously or with
the credentials, then retry). Tokens are kept per scope and fetched again when
they expire or the registry rejects them.

Blobs may be redirected to another host (a CDN with a signed URL); the
registry's Authorization header is never sent there.
"""

import base64
import email.utils
import hashlib
import json
import os
import re
import threading
import time
import urllib.parse

from ..errors import OciError
from .reference import DOCKER_HUB, validate_digest

MANIFEST_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]
SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = MANIFEST_TYPES[:2]
MAX_MANIFEST = 4 << 20
_CHUNK = 1 << 16


def api_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == DOCKER_HUB else registry


def _parse_challenge(header: str) -> tuple[str, dict]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Credentials:
    def __init__(self, username: str | None = None, password: str | None = None,
                 identity_token: str | None = None):
        self.username = username
        self.password = password
        self.identity_token = identity_token

    def __bool__(self):
        return bool(self.username or self.identity_token)


def load_credentials(registry: str, username: str | None = None,
                     password: str | None = None, environ=os.environ) -> Credentials:
    """Credentials for `registry`: the command line first, then auth files.

    $REGISTRY_AUTH_FILE (podman's), then $DOCKER_CONFIG/config.json or
    ~/.docker/config.json. Docker Hub is stored under several historical keys.
    """
    if username:
        return Credentials(username, password or "")
    candidates = []
    if environ.get("REGISTRY_AUTH_FILE"):
        candidates.append(environ["REGISTRY_AUTH_FILE"])
    docker_dir = environ.get("DOCKER_CONFIG") or os.path.join(environ.get("HOME", "/root"), ".docker")
    candidates.append(os.path.join(docker_dir, "config.json"))
    keys = {registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/",
            f"https://{registry}/v2/"}
    if registry == DOCKER_HUB:
        keys |= {"https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io",
                 "https://registry-1.docker.io"}
    for path in candidates:
        try:
            with open(path) as f:
                config = json.load(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise OciError(f"cannot read credentials from {path}: {e}; fix or remove the file") from None
        for key, entry in (config.get("auths") or {}).items():
            if key.rstrip("/") not in {k.rstrip("/") for k in keys} or not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return Credentials(identity_token=entry["identitytoken"])
            if entry.get("auth"):
                try:
                    user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
                except ValueError:
                    raise OciError(f"{path}: the auth entry for {key} is not base64 user:password") from None
                return Credentials(user, secret)
            if entry.get("username"):
                return Credentials(entry["username"], entry.get("password", ""))
    return Credentials()


class RegistryClient:
    """One registry host; thread-safe so layers can download in parallel."""

    def __init__(self, registry: str, credentials: Credentials | None = None,
                 plain_http: bool = False, mirrors: list[str] | None = None,
                 retries: int = 4, backoff: float = 0.5, timeout: float = 60.0):
        import requests
        self.registry = registry
        self.credentials = credentials or Credentials()
        scheme = "http" if plain_http else "https"
        self.bases = [m.rstrip("/") if "://" in m else f"https://{m.rstrip('/')}" for m in (mirrors or [])]
        self.bases.append(f"{scheme}://{api_host(registry)}")
        # Like docker, a registry on this machine may speak plain HTTP without being told.
        self.loopback_fallback = registry.rsplit(":", 1)[0] in ("localhost", "127.0.0.1", "[::1]")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ocirun-bundle-from-hub/0.1"
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._basic: set[str] = set()
        self._lock = threading.Lock()

    # -- authentication -------------------------------------------------

    def _auth_header(self, base: str, scope: str) -> dict:
        with self._lock:
            if base in self._basic:
                return {"Authorization": "Basic " + base64.b64encode(
                    f"{self.credentials.username}:{self.credentials.password}".encode()).decode()}
            token = self._tokens.get((base, scope))
        if token and token[1] > time.time():
            return {"Authorization": f"Bearer {token[0]}"}
        return {}

    def _answer_challenge(self, base: str, scope: str, header: str):
        scheme, params = _parse_challenge(header)
        if scheme == "basic":
            if not self.credentials:
                raise OciError(f"{self.registry} needs a login; pass --username and --password-stdin "
                               "or add it to ~/.docker/config.json")
            with self._lock:
                self._basic.add(base)
            return
        if scheme != "bearer" or "realm" not in params:
            raise OciError(f"{self.registry} asked for an authentication scheme we do not speak: {header!r}")
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        auth = None
        if self.credentials.identity_token:
            response = self._token_request("post", params["realm"], data={
                "grant_type": "refresh_token", "refresh_token": self.credentials.identity_token,
                "service": params.get("service", ""), "scope": scope, "client_id": "ocirun"})
        else:
            if self.credentials:
                auth = (self.credentials.username, self.credentials.password or "")
            response = self._token_request("get", params["realm"], params=query, auth=auth)
        if response.status_code in (401, 403):
            raise OciError(f"{self.registry}: the token server refused "
                           f"{'the credentials' if self.credentials else 'an anonymous token'} "
                           f"for {scope}; check --username/--password-stdin or your auth file")
        if response.status_code != 200:
            raise OciError(f"{self.registry}: token server {params['realm']} answered "
                           f"{response.status_code}; try again later")
        try:
            body = response.json()
            token = body.get("token") or body["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise OciError(f"{self.registry}: token server {params['realm']} sent no token") from None
        lifetime = body.get("expires_in") or 60
        # Refresh a little early so a request never goes out with a token about to lapse.
        expiry = time.time() + float(lifetime) - min(10.0, float(lifetime) / 2)
        with self._lock:
            self._tokens[(base, scope)] = (token, expiry)

    def _token_request(self, method, url, **kwargs):
        import requests
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise OciError(f"cannot reach the token server {url}: {_reason(e)}") from None

    # -- requests -------------------------------------------------------

    def request(self, path: str, scope: str, headers: dict | None = None, stream: bool = False,
                what: str = ""):
        """GET `path` under /v2/ with auth, retries, mirrors and safe redirects.

        Returns the final 2xx response; any other outcome becomes an OciError
        (404 is raised as NotFound so callers can word it).
        """
        last_error = None
        for base in self.bases:
            try:
                return self._request_base(base, path, scope, headers or {}, stream, what)
            except MirrorUnusable as e:
                last_error = e
                continue
        raise OciError(str(last_error))

    def _request_base(self, base, path, scope, headers, stream, what):
        import requests
        url = f"{base}/v2/{path}"
        is_mirror = base != self.bases[-1]
        auth_retried = False
        attempt = 0
        while True:
            try:
                response = self._get_following(url, base, scope, headers, stream)
            except requests.exceptions.SSLError:
                if self.loopback_fallback and base.startswith("https://") and not is_mirror:
                    base = "http://" + base[len("https://"):]
                    self.bases[-1] = base
                    url = f"{base}/v2/{path}"
                    continue
                raise OciError(f"TLS with {base} failed; if it serves plain HTTP pass --plain-http") from None
            except requests.RequestException as e:
                if attempt < self.retries:
                    self._sleep(attempt)
                    attempt += 1
                    continue
                message = f"cannot reach {base} ({_reason(e)}); check the name, the network, or --plain-http"
                if is_mirror:
                    raise MirrorUnusable(message) from None
                raise OciError(message) from None
            status = response.status_code
            if status == 401 and not auth_retried and "WWW-Authenticate" in response.headers:
                auth_retried = True
                with self._lock:
                    self._tokens.pop((base, scope), None)
                self._answer_challenge(base, scope, response.headers["WWW-Authenticate"])
                continue
            if status in (200, 206):
                return response
            response.close()
            if status == 429:
                raise OciError(_rate_limit_message(self.registry, response))
            if status >= 500 and attempt < self.retries:
                self._sleep(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            if is_mirror and status in (401, 403, 404) or is_mirror and status >= 500:
                raise MirrorUnusable(f"mirror {base} answered {status} for {what or path}")
            if status == 404:
                raise NotFound(f"{what or path} not found on {self.registry}")
            if status == 401:
                raise OciError(f"{self.registry} refused access to {what or path}: "
                               "check the name and your credentials (--username/--password-stdin)")
            if status == 403:
                raise OciError(f"{self.registry} forbids access to {what or path}; "
                               "your account lacks permission")
            raise OciError(f"{self.registry} answered {status} for {what or path}; try again later")

    def _get_following(self, url, base, scope, headers, stream):
        """Follow redirects by hand: credentials go only to the registry itself."""
        registry_netloc = urllib.parse.urlsplit(base).netloc
        for _hop in range(10):
            send = dict(headers)
            if urllib.parse.urlsplit(url).netloc == registry_netloc:
                send.update(self._auth_header(base, scope))
            response = self.session.get(url, headers=send, stream=stream, allow_redirects=False,
                                        timeout=self.timeout)
            if response.status_code in (301, 302, 303, 307, 308) and "Location" in response.headers:
                url = urllib.parse.urljoin(url, response.headers["Location"])
                response.close()
                continue
            return response
        raise OciError(f"{self.registry}: too many redirects for {url}")

    def _sleep(self, attempt, retry_after=None):
        delay = self.backoff * (2 ** attempt)
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, int(retry_after)), 30)
        time.sleep(delay)

    # -- the API --------------------------------------------------------

    def get_manifest(self, repository: str, ref: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest or index, digest-checked."""
        scope = f"repository:{repository}:pull"
        try:
            response = self.request(f"{repository}/manifests/{ref}", scope,
                                    {"Accept": ", ".join(MANIFEST_TYPES + list(SCHEMA1_TYPES))},
                                    stream=True, what=f"manifest {repository}:{ref}")
        except NotFound:
            raise OciError(f"{self.registry}/{repository}:{ref} not found: check the image name "
                           "and tag (and that you are logged in if it is private)") from None
        data = self.read_limited(response, MAX_MANIFEST, f"manifest of {repository}:{ref}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        pinned = ref.startswith(("sha256:", "sha512:"))
        algorithm = ref.split(":")[0] if pinned else "sha256"
        actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if pinned and actual != ref:
            raise OciError(f"manifest {repository}@{ref} has digest {actual}; the registry served wrong data")
        return data, media_type, actual

    def read_limited(self, response, limit: int, what: str) -> bytes:
        """The body of a small document, refusing more than `limit` bytes."""
        import requests
        chunks, total = [], 0
        try:
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise OciError(f"{what} is larger than {limit} bytes; refusing it")
                chunks.append(chunk)
        except requests.RequestException as e:
            raise OciError(f"{self.registry}: reading {what} failed ({_reason(e)}); try again") from None
        finally:
            response.close()
        return b"".join(chunks)

    def blob_url_fetch(self, repository: str, descriptor: dict, offset: int = 0):
        """A streaming response for a blob, from byte `offset`.

        Foreign layers carry `urls`; those are fetched without credentials.
        """
        digest = validate_digest(descriptor["digest"])
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        for url in descriptor.get("urls") or []:
            if not url.startswith(("https://", "http://")):
                continue
            try:
                response = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
            except Exception:
                continue
            if response.status_code in (200, 206):
                return response
            response.close()
        return self.request(f"{repository}/blobs/{digest}", f"repository:{repository}:pull",
                            headers, stream=True, what=f"blob {digest}")

    def fetch_blob(self, repository: str, descriptor: dict, out, progress=None):
        """Append the blob to the file `out`, resuming with Range after a dropped connection.

        Returns the number of bytes written. The caller verifies the digest.
        """
        import requests
        written = 0
        attempt = 0
        while True:
            response = self.blob_url_fetch(repository, descriptor, written)
            try:
                # A server that ignores Range resends from byte 0: skip what we have,
                # so a reader following `out` never sees the data change under it.
                skip = written if response.status_code == 200 else 0
                size = descriptor.get("size")
                for chunk in response.iter_content(_CHUNK):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk = chunk[dropped:]
                        skip -= dropped
                        if not chunk:
                            continue
                    written += len(chunk)
                    if size is not None and written > size:
                        raise OciError(f"blob {descriptor['digest']} is larger than the "
                                       f"{size} bytes the manifest declares; refusing it")
                    out.write(chunk)
                    out.flush()
                    if progress:
                        progress(written)
                if size is not None and written < size:
                    raise requests.ConnectionError(f"connection closed after {written} of {size} bytes")
                return written
            except (requests.RequestException, ConnectionError) as e:
                if attempt >= self.retries:
                    raise OciError(f"download of {descriptor['digest']} from {self.registry} kept "
                                   f"failing ({_reason(e)}); try again later") from None
                self._sleep(attempt)
                attempt += 1
            finally:
                response.close()


class NotFound(OciError):
    pass


class MirrorUnusable(Exception):
    pass


def _reason(e: Exception) -> str:
    text = str(e)
    for pattern in (r"Connection refused", r"Name or service not known", r"timed out",
                    r"Temporary failure in name resolution", r"No route to host"):
        if re.search(pattern, text):
            return pattern.lower()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _rate_limit_message(registry: str, response) -> str:
    h = response.headers
    parts = []
    if h.get("RateLimit-Limit"):
        parts.append(f"limit {h['RateLimit-Limit']}")
    if h.get("RateLimit-Remaining"):
        parts.append(f"remaining {h['RateLimit-Remaining']}")
    retry = h.get("Retry-After")
    if retry:
        if not retry.isdigit():
            try:
                retry = str(max(0, int(email.utils.parsedate_to_datetime(retry).timestamp() - time.time())))
            except (TypeError, ValueError):
                pass
        parts.append(f"retry after {retry}s")
    detail = f" ({', '.join(parts)})" if parts else ""
    return (f"{registry} is rate-limiting pulls (HTTP 429){detail}; wait, log in with --username "
            "to get a higher limit, or use a registry mirror (--mirror)")

"""Image references (`alpine`, `ghcr.io/org/img@sha256:...`) and digests.

Names follow the rules `docker pull` applies, so the same words pull the same
image: a first component with a dot or a colon, or `localhost`, is a registry
host; otherwise the image lives on Docker Hub, under `library/` when it has no
namespace.
"""

import re
from dataclasses import dataclass

from ..errors import OciError

DOCKER_HUB = "docker.io"
DIGEST_HEX_LENGTH = {"sha256": 64, "sha512": 128}

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](?::[0-9]{1,5})?$")


def validate_digest(digest: str, what: str = "digest") -> str:
    """Return `digest` if it is `sha256:<64 hex>` or `sha512:<128 hex>`.

    Digests come from the network and end up in cache paths, so anything else
    (`../`, upper case, odd algorithms) is refused before it is used.
    """
    if not isinstance(digest, str) or ":" not in digest:
        raise OciError(f"{what} {digest!r} is not of the form algorithm:hex")
    algorithm, hexpart = digest.split(":", 1)
    length = DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        raise OciError(f"{what} {digest!r} uses an unsupported algorithm (sha256 and sha512 are)")
    if len(hexpart) != length or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise OciError(f"{what} {digest!r} is not {length} lower-case hex digits")
    return digest


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def ref(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse `[registry[:port]/]path[:tag][@digest]`; the default tag is `latest`."""
    original = text
    if text.startswith("docker://"):
        text = text[len("docker://"):]
    if text.startswith("//"):
        text = text[2:]
    if not text:
        raise OciError("empty image reference; give one like `alpine` or `ghcr.io/org/img:tag`")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        validate_digest(digest, f"image reference {original!r}: digest")
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
        if not _HOST.match(registry):
            raise OciError(f"image reference {original!r}: {registry!r} is not a valid registry host")
    else:
        registry, path = DOCKER_HUB, text
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise OciError(f"image reference {original!r}: tag {tag!r} is not valid "
                           "(letters, digits, _ . -, at most 128)")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        raise OciError(f"image reference {original!r}: repository {path!r} is not valid "
                       "(lower-case letters, digits and separators . _ - /)")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)

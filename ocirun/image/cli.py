"""The `bundle-from-hub` command.

    bundle-from-hub alpine ./alpine-bundle
    bundle-from-hub oci:./layout:v1 ./bundle -- sh -c 'echo hi'
    bundle-from-hub cache show | cache prune
"""

import os
import signal
import sys
import threading
import time

import click

from ..errors import OciError
from .cache import DEFAULT_CACHE


def _format_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


class Progress:
    """Per-layer bars on a terminal, one plain line per event otherwise."""

    def __init__(self, layers: list[dict], stream, tty: bool, quiet: bool):
        self.layers = layers
        self.stream = stream
        self.tty = tty
        self.quiet = quiet
        self.state = [{"done": 0, "total": d["size"], "start": time.monotonic(), "status": "waiting"}
                      for d in layers]
        self.lock = threading.Lock()
        self.drawn = 0
        self.last_draw = 0.0

    def __call__(self, index, done, total, cached=False, applied=False):
        if self.quiet:
            return
        with self.lock:
            s = self.state[index]
            short = self.layers[index]["digest"][:19]
            if applied:
                s["status"] = "applied"
                if not self.tty:
                    self.stream.write(f"layer {index + 1}/{len(self.layers)} {short}: applied\n")
            elif cached:
                s.update(done=total, status="cached")
                if not self.tty:
                    self.stream.write(f"layer {index + 1}/{len(self.layers)} {short}: "
                                      f"{_format_size(total)}, no download needed\n")
            else:
                first = s["status"] == "waiting"
                s.update(done=done, status="downloading")
                if not self.tty and (first or done == total):
                    verb = "downloaded" if done == total else "downloading"
                    self.stream.write(f"layer {index + 1}/{len(self.layers)} {short}: {verb} "
                                      f"{_format_size(total)}\n")
            if self.tty and (time.monotonic() - self.last_draw > 0.1 or applied or cached or done == total):
                self._draw()
            self.stream.flush()

    def _draw(self):
        self.last_draw = time.monotonic()
        lines = []
        for i, (d, s) in enumerate(zip(self.layers, self.state)):
            total = s["total"] or 1
            width = 30
            filled = int(width * min(s["done"], total) / total)
            elapsed = max(time.monotonic() - s["start"], 1e-3)
            speed = f"{_format_size(s['done'] / elapsed)}/s" if s["status"] == "downloading" else ""
            lines.append(f"{d['digest'][7:19]} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{_format_size(s['done'])}/{_format_size(s['total'])} {speed} {s['status']}")
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")
        for line in lines:
            self.stream.write(f"\x1b[2K{line}\n")
        self.drawn = len(lines)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _fail(message: str):
    click.echo(f"bundle-from-hub: {message}", err=True)
    sys.exit(1)


class _Main(click.Group):
    """`bundle-from-hub IMAGE DIR` unless the first word is a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["pull"] + list(args)
        return super().parse_args(ctx, args)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Turn an image reference into an OCI bundle: bundle-from-hub IMAGE DIR [-- CMD ARGS...]"""


@cli.command("pull")
@click.argument("image")
@click.argument("destination", type=click.Path())
@click.argument("command", nargs=-1)
@click.option("--platform", help="os/arch[/variant] to pick from a multi-platform image (default: the host's)")
@click.option("--cache", "cache_dir", default=DEFAULT_CACHE, show_default=True, help="blob cache directory")
@click.option("--username", help="registry user name")
@click.option("--password-stdin", is_flag=True, help="read the registry password from standard input")
@click.option("--plain-http", is_flag=True, help="talk HTTP, not HTTPS (local test registries)")
@click.option("--mirror", multiple=True, help="registry mirror to try first for docker.io images")
@click.option("--tty", is_flag=True, help="give the container a terminal (process.terminal)")
@click.option("--force", is_flag=True, help="replace an existing destination")
@click.option("--quiet", "-q", is_flag=True, help="print nothing but errors")
@click.option("--uid-map", help="containerID:hostID:size[,...] to shift file owners by")
@click.option("--gid-map", help="containerID:hostID:size[,...] to shift file groups by")
@click.option("--max-layer-size", type=int, default=None, help="refuse layers unpacking to more bytes")
@click.option("--jobs", type=click.IntRange(1, 16), default=4, show_default=True,
              help="layers downloaded at once")
def pull(image, destination, command, platform, cache_dir, username, password_stdin, plain_http,
         mirror, tty, force, quiet, uid_map, gid_map, max_layer_size, jobs):
    """Pull IMAGE and write a bundle at DESTINATION.

    IMAGE is a registry reference (alpine, ghcr.io/org/img:tag, docker://...),
    oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE. Words after `--`
    replace the image's Cmd.
    """
    # A SIGTERM (systemd, timeout, CI) must unwind like ^C so the temporary bundle is removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = _pull(image, destination, list(command), platform, cache_dir, username,
                        password_stdin, plain_http, list(mirror), tty, force, quiet, uid_map, gid_map,
                        max_layer_size, jobs)
    except OciError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted; nothing was written")
    if not quiet:
        click.echo(f"reference: {summary.reference}\ndigest:    {summary.digest}\n"
                   f"platform:  {summary.platform}\nlayers:    {summary.layers} "
                   f"({_format_size(summary.size)} compressed, {_format_size(summary.unpacked)} unpacked)\n"
                   f"time:      {summary.seconds:.1f}s\nbundle:    {os.path.abspath(destination)}")


def make_source(image: str, cache_dir: str, username=None, password=None, plain_http=False,
                mirrors=(), jobs=4):
    from .cache import BlobCache
    from .sources import DockerArchiveSource, LayoutSource, RegistrySource
    if image.startswith("oci:"):
        path, tag = image[4:], None
        head, sep, tail = path.rpartition(":")
        if sep and "/" not in tail and not os.path.exists(path):
            path, tag = head, tail
        return LayoutSource(path, tag)
    if image.startswith("oci-archive:"):
        return LayoutSource(image[len("oci-archive:"):], archive=True)
    if image.startswith("docker-archive:"):
        return DockerArchiveSource(image[len("docker-archive:"):])
    from .reference import DOCKER_HUB, parse_reference
    from .registry import RegistryClient, load_credentials
    ref = parse_reference(image)
    credentials = load_credentials(ref.registry, username, password)
    client = RegistryClient(ref.registry, credentials, plain_http=plain_http,
                            mirrors=list(mirrors) if ref.registry == DOCKER_HUB else None)
    return RegistrySource(ref, client, BlobCache(cache_dir), jobs)


def _pull(image, destination, command, platform, cache_dir, username, password_stdin, plain_http,
          mirrors, tty, force, quiet, uid_map, gid_map, max_layer_size, jobs):
    from .bundle import build_bundle
    from .layers import DEFAULT_MAX_LAYER_BYTES, parse_id_map
    from .sources import parse_platform
    password = None
    if password_stdin:
        if not username:
            raise OciError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
    want = parse_platform(platform)
    explicit_variant = bool(platform) and platform.count("/") == 2
    source = make_source(image, cache_dir, username, password, plain_http, mirrors, jobs)

    def progress_for(layers):
        return Progress(layers, sys.stderr, sys.stderr.isatty(), quiet)

    def warn(message):
        if not quiet:
            click.echo(f"warning: {message}", err=True)

    return build_bundle(source, destination, want, explicit_variant, command or None, tty, force,
                        parse_id_map(uid_map) if uid_map else None,
                        parse_id_map(gid_map) if gid_map else None,
                        max_layer_size or DEFAULT_MAX_LAYER_BYTES, progress_for, warn)


@cli.group("cache")
def cache_group():
    """Show or prune the blob cache."""


@cache_group.command("show")
@click.option("--cache", "cache_dir", default=DEFAULT_CACHE, show_default=True)
def cache_show(cache_dir):
    """List cached blobs and their total size."""
    from .cache import BlobCache
    total = count = 0
    for digest, size, used in BlobCache(cache_dir).entries():
        click.echo(f"{digest}  {_format_size(size):>10}  last used "
                   f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(used))}")
        total += size
        count += 1
    click.echo(f"{count} blobs, {_format_size(total)} in {cache_dir}")


@cache_group.command("prune")
@click.option("--cache", "cache_dir", default=DEFAULT_CACHE, show_default=True)
@click.option("--older-than", type=float, default=0.0, show_default=True,
              help="only blobs unused for this many days")
def cache_prune(cache_dir, older_than):
    """Remove cached blobs (all, or those unused for --older-than days)."""
    from .cache import BlobCache
    try:
        removed, freed = BlobCache(cache_dir).prune(older_than * 86400)
    except OSError as e:
        _fail(f"cannot prune {cache_dir}: {e.strerror}")
    click.echo(f"removed {removed} files, freed {_format_size(freed)}")


def main():
    try:
        cli(prog_name="bundle-from-hub")
    except OciError as e:
        _fail(str(e))
    except Exception as e:  # a bug, but the user still gets one line, not a traceback
        _fail(f"internal error: {type(e).__name__}: {e}; please report it")

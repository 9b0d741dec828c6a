"""Download a registered checkpoint, checking size and sha256 before it appears under its final name.

The bytes stream into a temporary sibling of the destination while being hashed, so a crash, a short
read or a wrong file never leaves anything at the destination. There are no retries here: Snakemake's
``retries:`` re-runs the whole rule, and an interactive user re-runs the command.

The source URL is, in order: the ``url`` argument, ``$FMWSSS_WEIGHTS_MIRROR`` + the registry filename
(an institute mirror or a local ``http.server``), the registry URL.

A checkpoint the registry declares no sha256 for (``pin_on_first_fetch``) is checked against the digest its
first fetch recorded in the sidecar; the first fetch itself records what it got, with a warning asking to
declare it (``fmwsss.models.weights`` module docstring).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from fmwsss.io.atomic import atomic_path
from fmwsss.models.weights import (
    MissingWeightsError,
    WeightsIntegrityError,
    WeightSpec,
    expected_digest,
    fetch_command,
    get_weight,
    local_path,
    missing_message,
    pin_message,
    verify_local,
    write_sidecar,
)

MIRROR_ENV = "FMWSSS_WEIGHTS_MIRROR"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


class DownloadError(MissingWeightsError):
    """The file could not be fetched (offline, HTTP error); the message says where to put a manual download."""


def source_url(spec: WeightSpec, url: str | None = None) -> str:
    """The URL to fetch ``spec`` from: ``url``, else the mirror from the environment, else the registry's."""
    if url:
        return url
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    if spec.url is None:
        raise ValueError(f"{spec.name!r} has no download URL")
    return spec.url


def fetch_weight(
    name: str, dest_dir: str | os.PathLike | None = None, url: str | None = None, progress: bool = True
) -> Path:
    """Download checkpoint ``name`` into ``dest_dir`` (default ``weights_dir()``) unless already verified there.

    Args:
        name: registry name (``fmwsss.models.list_weights()``); test models made locally cannot be fetched.
        dest_dir: target directory; created if needed.
        url: explicit source, overriding ``$FMWSSS_WEIGHTS_MIRROR`` and the registry URL.
        progress: show a tqdm byte progress bar on stderr.

    Returns:
        The path of the verified file (a ``.sha256`` sidecar is written next to it).

    Raises:
        DownloadError: network failure or HTTP error; says where to put a manually downloaded file.
        WeightsIntegrityError: wrong size (truncated) or sha256; nothing is left at the destination.
    """
    spec = get_weight(name)
    dest = local_path(name, dest_dir)
    if spec.made_locally:
        raise ValueError(f"{name!r} is a random-weight test model: it is never downloaded; run "
                         f"`{fetch_command(spec, dest.parent)}`")
    if dest.is_file():
        try:
            verify_local(dest, spec)
            return dest
        except WeightsIntegrityError as err:
            log.warning("re-downloading: %s", err)
    src = source_url(spec, url)
    expected = expected_digest(dest, spec)  # None only for a first fetch of a digest the registry lacks
    try:
        response = urllib.request.urlopen(src, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise _unreachable(spec, dest, f"HTTP {err.code} {err.reason} from {src}") from err
    except (urllib.error.URLError, OSError) as err:
        raise _unreachable(spec, dest, f"could not download {src}: {getattr(err, 'reason', err)}") from err
    with response, atomic_path(dest) as tmp:
        actual = _stream(response, tmp, spec, src, progress, expected)
    write_sidecar(dest, actual)
    if expected is None:
        log.warning(pin_message(spec, dest, actual))
    return dest


def _unreachable(spec: WeightSpec, dest: Path, reason: str) -> DownloadError:
    """The error for a failed fetch: how to get the file by hand, or from a mirror."""
    return DownloadError(
        missing_message(spec, dest, reason) + f"\n  or set {MIRROR_ENV} to a base URL that serves {spec.filename}"
    )


def _stream(response: http.client.HTTPResponse, tmp: Path, spec: WeightSpec, src: str, progress: bool,
            expected_sha256: str | None) -> str:
    """Copy ``response`` into ``tmp`` while hashing; raise on a short read, wrong size or a sha256 other than
    ``expected_sha256`` (None: any, for a first fetch that pins it). Returns the sha256."""
    from tqdm import tqdm  # only needed when bytes actually move

    header = response.headers.get("Content-Length")
    announced = int(header) if header and header.isdigit() else None
    expected_size = spec.size if spec.size is not None else announced
    digest = hashlib.sha256()
    received = 0
    with open(tmp, "wb") as fh, tqdm(
        total=expected_size, unit="B", unit_scale=True, unit_divisor=1024, desc=spec.filename,
        disable=not progress, mininterval=1.0,
    ) as bar:
        try:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except http.client.IncompleteRead as err:
            raise WeightsIntegrityError(
                f"truncated download from {src}: got {received} bytes, expected {expected_size}"
            ) from err
        except OSError as err:
            raise _unreachable(spec, tmp.parent / spec.filename, f"{src} failed after {received} bytes: {err}") from err
        fh.flush()
        os.fsync(fh.fileno())
    for expected in (announced, spec.size):
        if expected is not None and received != expected:
            raise WeightsIntegrityError(f"truncated download from {src}: got {received} bytes, expected {expected}")
    actual = digest.hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        pinned = " (recorded by its first fetch: the registry declares none)" if spec.sha256 is None else ""
        raise WeightsIntegrityError(f"sha256 mismatch for {src}: got {actual}, expected {expected_sha256}{pinned}")
    return actual

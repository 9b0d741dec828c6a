"""Registry of the pretrained weights fmwsss uses, and sha256 verification of local copies.

Imitates open_clip's ``pretrained.py``: every real checkpoint is declared with its URL, sha256 and size, so
a stage key can name the weights by their declared digest at parse time (``weight_identity``) without
touching the file, and a loader can insist on exactly those bytes (``require_local``).

Hashing a 2.5 GB checkpoint takes seconds, so the full sha256 runs once per file and is remembered in a
sidecar ``<file>.sha256`` (JSON: size, mtime_ns, digest). Later checks trust the sidecar only while the
file's size and mtime still match it. Interactive use (``require_local``) re-hashes a changed file; a
pipeline job (``require_verified``) never hashes on success and refuses a file changed since its sidecar was
written, because the workflow's verify rule is what hashes, once per file.

Random-weight test models (``url=None``, :func:`is_test_model`) are made locally, never downloaded, and never
stand in for a missing real checkpoint: a config names them explicitly. The registry declares no digest for
them (random bytes, made on the spot), so the sidecar written at their creation (``record_creation``) is the
reference their bytes are checked against. Two sizes, two check rules:

* tiny models (``tiny=True``, ``fmwsss weights make-tiny``: the tests and the demo, a few MB) are hashed on
  every check: their mtime proves nothing, as Snakemake touches a rule's outputs after the job that made
  them, after the sidecar was written;
* full-size random models (``random_*``, ``fmwsss weights make-random``: the real architectures, e.g. a
  2.5 GB SAM ViT-H, for a rehearsal that measures real cost and memory) follow the real-checkpoint rule:
  ``fmwsss weights verify`` (or the workflow's verify rule) hashes once against the creation record and
  jobs then trust size and mtime.

A real checkpoint whose sha256 the registry does not declare yet (``pin_on_first_fetch=True``: its digest
could not be read from a trusted listing when it was added) is pinned by its first fetch or verify: that
hashes the file, records the digest in the sidecar and logs a warning asking to declare it in the registry;
every later check compares against that record, as for a locally made model. This trusts whatever bytes
the first fetch got; its stage-key identity is the URL (:func:`weight_identity`), so two machines that pinned
different bytes share keys: declare the digest as soon as it is known.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fmwsss.io.atomic import atomic_write_json
from fmwsss.io.digest import file_sha256 as sha256_file

TINY_VERSION = 1
"""Bump when the tiny architectures change: it is part of every stage key that uses a tiny model."""

RANDOM_VERSION = 1
"""Bump when the way full-size random models are made changes (initialisation, file layout, the seed): it is
part of every stage key that uses one, since that key names the model without reading it."""

RANDOM_SEED = 0
"""The seed the workflow makes full-size random models with (the same seed gives the same weights on CPU);
stage keys assume it: a file made with another ``--seed`` is a different model under the same name."""

WEIGHTS_DIR_ENV = "FMWSSS_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("resources/weights")
SIDECAR_SUFFIX = ".sha256"

log = logging.getLogger(__name__)


class MissingWeightsError(FileNotFoundError):
    """A checkpoint is not on disk (or could not be fetched); the message says how to get it."""


class WeightsIntegrityError(ValueError):
    """A checkpoint's size or sha256 differs from the registry's; the message names file, expected and actual."""


@dataclass(frozen=True)
class WeightSpec:
    """One checkpoint: where it comes from, what its bytes must hash to, and its local file name.

    ``arch`` is the builder's name for the architecture (open_clip model name, segment-anything registry
    key, ``fmwsss.models.swin.SWIN_ARCHS`` key). ``size`` is in bytes; ``None`` means not declared, and only
    the sha256 is checked. ``url=None`` marks a random-weight test model made locally (:attr:`made_locally`);
    ``tiny`` one of those small enough (MBs) to hash on every check, made by ``make-tiny``;
    ``pin_on_first_fetch`` a real checkpoint with ``sha256=None`` whose first fetch or verify records the
    digest later checks insist on (module docstring).
    """

    name: str
    kind: str  # "clip" | "sam" | "swin"
    arch: str
    url: str | None
    sha256: str | None
    size: int | None
    filename: str
    tiny: bool = False
    description: str = ""
    pin_on_first_fetch: bool = False

    def __post_init__(self) -> None:
        if self.made_locally and self.sha256 is not None:
            raise ValueError(f"{self.name}: a locally made model has no registry digest (its creation record is)")
        if self.pin_on_first_fetch and (self.made_locally or self.sha256 is not None):
            raise ValueError(f"{self.name}: pin_on_first_fetch is for a real checkpoint whose sha256 is not "
                             "declared (url set, sha256 None)")
        if not self.made_locally and self.sha256 is None and not self.pin_on_first_fetch:
            raise ValueError(f"{self.name}: real weights must declare a sha256 (or, until it is known, "
                             "set pin_on_first_fetch)")
        if self.tiny and not self.made_locally:
            raise ValueError(f"{self.name}: tiny models are made locally (url None)")

    @property
    def made_locally(self) -> bool:
        """A random-weight test model created on this machine (no URL, no registry digest)."""
        return self.url is None

    @property
    def recorded_digest(self) -> bool:
        """Checked against the digest its sidecar recorded (at creation, or at the first fetch/verify of a
        checkpoint the registry declares no sha256 for), not against a registry digest."""
        return self.made_locally or self.sha256 is None


_SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything"
_HF_BASE = "https://huggingface.co"

WEIGHTS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="clip_vit_b16_openai",
            kind="clip",
            arch="ViT-B-16-quickgelu",
            url="https://openaipublic.azureedge.net/clip/models/"
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
            sha256="5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
            size=None,  # not verified from a public listing; the sha256 alone pins the bytes
            filename="ViT-B-16.pt",
            description="OpenAI CLIP ViT-B/16 (open_clip ViT-B-16-quickgelu, pretrained tag 'openai'), TorchScript",
        ),
        WeightSpec(
            name="sam_vit_h",
            kind="sam",
            arch="vit_h",
            url=f"{_SAM_BASE}/sam_vit_h_4b8939.pth",
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            size=2564550879,
            filename="sam_vit_h_4b8939.pth",
            description="Segment Anything ViT-H (636M parameters), the method's mask generator",
        ),
        WeightSpec(
            name="sam_vit_l",
            kind="sam",
            arch="vit_l",
            url=f"{_SAM_BASE}/sam_vit_l_0b3195.pth",
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            size=1249524607,
            filename="sam_vit_l_0b3195.pth",
            description="Segment Anything ViT-L (308M parameters)",
        ),
        WeightSpec(
            name="sam_vit_b",
            kind="sam",
            arch="vit_b",
            url=f"{_SAM_BASE}/sam_vit_b_01ec64.pth",
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            size=375042383,
            filename="sam_vit_b_01ec64.pth",
            description="Segment Anything ViT-B (91M parameters), cheapest real SAM",
        ),
        WeightSpec(
            name="swin_large_in22k",
            kind="swin",
            arch="swin_large_patch4_window12_384",
            url=f"{_HF_BASE}/microsoft/swin-large-patch4-window12-384-in22k/resolve/main/pytorch_model.bin",
            sha256=None,  # not known here (no trusted listing was reachable): pinned by the first fetch
            size=None,
            filename="swin_large_patch4_window12_384_in22k.bin",
            description="Swin-L ImageNet-22k classifier (197M parameters; hub layout), Mask2Former's backbone",
            pin_on_first_fetch=True,
        ),
        WeightSpec(
            name="tiny_clip",
            kind="clip",
            arch="tiny",
            url=None,
            sha256=None,
            size=None,
            filename="tiny_clip.pt",
            tiny=True,
            description="tiny random-weight CLIP in OpenAI's file format (tests/demo only)",
        ),
        WeightSpec(
            name="tiny_sam",
            kind="sam",
            arch="tiny",
            url=None,
            sha256=None,
            size=None,
            filename="tiny_sam.pth",
            tiny=True,
            description="tiny random-weight SAM in segment-anything's file format (tests/demo only)",
        ),
        WeightSpec(
            name="tiny_swin",
            kind="swin",
            arch="tiny",
            url=None,
            sha256=None,
            size=None,
            filename="tiny_swin.pth",
            tiny=True,
            description="tiny random-weight Swin classifier in the hub's file layout (tests/demo only)",
        ),
        WeightSpec(
            name="random_clip_vit_b16",
            kind="clip",
            arch="ViT-B-16-quickgelu",
            url=None,
            sha256=None,
            size=None,
            filename="random_clip_vit_b16.pt",
            description="random-weight CLIP ViT-B/16 in OpenAI's TorchScript format, ~300 MB (cost rehearsals only)",
        ),
        WeightSpec(
            name="random_sam_vit_h",
            kind="sam",
            arch="vit_h",
            url=None,
            sha256=None,
            size=None,
            filename="random_sam_vit_h.pth",
            description="random-weight SAM ViT-H state dict, 2.4 GiB (cost rehearsals only)",
        ),
    )
}


def is_test_model(name: str) -> bool:
    """Whether ``name`` is a random-weight test model made locally (no download URL): results made with one
    show the pipeline's mechanics and cost, never the method's quality, and are marked so wherever shown."""
    spec = WEIGHTS.get(name)
    return spec is not None and spec.made_locally


def tiny_model_names() -> list[str]:
    """Registry names of the tiny test models (made by ``fmwsss weights make-tiny``), sorted."""
    return sorted(n for n, s in WEIGHTS.items() if s.tiny)


def random_model_names() -> list[str]:
    """Registry names of the full-size random test models (made by ``fmwsss weights make-random``), sorted."""
    return sorted(n for n, s in WEIGHTS.items() if s.made_locally and not s.tiny)


def spec_for_file(path: str | os.PathLike) -> WeightSpec | None:
    """The registry entry whose file name is ``path``'s (file names are unique), or None."""
    name = Path(path).name
    return next((spec for spec in WEIGHTS.values() if spec.filename == name), None)


def get_weight(name: str) -> WeightSpec:
    """Return the registry entry ``name``; a KeyError lists the known names."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(WEIGHTS))}") from None


def list_weights(kind: str | None = None) -> list[str]:
    """Registered weight names (optionally only ``kind`` "clip", "sam" or "swin"), sorted."""
    return sorted(n for n, s in WEIGHTS.items() if kind is None or s.kind == kind)


def weights_dir() -> Path:
    """Directory holding checkpoints: ``$FMWSSS_WEIGHTS_DIR`` or ``resources/weights`` under the cwd."""
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or DEFAULT_WEIGHTS_DIR).absolute()


def local_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where checkpoint ``name`` lives (or will live) under ``root`` (default ``weights_dir()``)."""
    return (Path(root) if root is not None else weights_dir()).absolute() / get_weight(name).filename


def weight_identity(name: str) -> str:
    """Cheap identity for stage keys, never read from a file: the declared sha256 of real weights,
    ``url:<URL>`` for real weights whose digest the registry does not declare yet (pinned per machine by the
    first fetch), ``tiny-v<TINY_VERSION>`` for a tiny model, ``random-v<RANDOM_VERSION>-<name>`` for a
    full-size random one (made with :data:`RANDOM_SEED`, deterministic in it)."""
    spec = get_weight(name)
    if spec.tiny:
        return f"tiny-v{TINY_VERSION}"
    if spec.made_locally:
        return f"random-v{RANDOM_VERSION}-{name}"
    return spec.sha256 if spec.sha256 is not None else f"url:{spec.url}"


def sidecar_path(path: Path) -> Path:
    """The ``<file>.sha256`` record next to ``path``."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: Path, digest: str) -> None:
    """Record ``digest`` for ``path`` as it is now (size, mtime_ns), atomically."""
    st = path.stat()
    atomic_write_json(sidecar_path(path), {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _read_sidecar(path: Path) -> dict | None:
    """The sidecar record of ``path`` (sha256, size, mtime_ns), or None when absent or unreadable."""
    try:
        record = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def _describes(record: dict | None, st: os.stat_result) -> bool:
    """Whether a sidecar record was written for the file as it is now (same size and mtime)."""
    return record is not None and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns


def _sidecar_digest(path: Path, st: os.stat_result) -> str | None:
    """The recorded digest if the sidecar still describes this exact file (same size and mtime), else None."""
    record = _read_sidecar(path)
    return record["sha256"] if _describes(record, st) else None


def expected_digest(path: Path, spec: WeightSpec) -> str | None:
    """The sha256 ``path`` must have: the registry's, or for a locally made model the one recorded when it was
    made, or for a checkpoint the registry declares no digest for the one its first fetch/verify recorded
    (None before that)."""
    if not spec.recorded_digest:
        return spec.sha256
    record = _read_sidecar(path)
    return record["sha256"] if record else None


def mismatch_message(path: Path, spec: WeightSpec, expected: str | None, found: str, what: str = "") -> str:
    """The error for wrong bytes: file, expected and found sha256, and the command that gets the right file."""
    head = f"{path}: wrong bytes for {spec.name}" + (f" ({what})" if what else "")
    if spec.pin_on_first_fetch:
        head += (f"\n  (the registry declares no sha256 for {spec.name}: the expected one is what its first fetch "
                 f"or verify recorded in {sidecar_path(path).name}; delete that file only if the upstream file "
                 "really changed)")
    return "\n".join((
        head,
        f"  expected sha256 {expected or 'unknown (no record of this test model made here: recreate it)'}",
        f"  found    sha256 {found}",
        f"  get the right file: {fetch_command(spec, path.absolute().parent)}",
    ))


def pin_message(spec: WeightSpec, path: Path, digest: str) -> str:
    """The warning of a first fetch/verify that pinned a digest the registry does not declare."""
    return (f"{spec.name}: the registry declares no sha256 for {spec.url}; pinned {path} on first use as "
            f"sha256 {digest} (recorded in {sidecar_path(path).name}; later checks insist on it). Confirm it "
            f"against a trusted source and add sha256=\"{digest}\" to its entry in fmwsss/models/weights.py.")


def record_creation(path: str | os.PathLike, digest: str | None = None) -> str:
    """Write the sidecar of a just-made test model: the reference later checks compare against. ``digest`` is
    the sha256 computed while writing it (a 2.5 GB model is then not read back); None hashes the file."""
    path = Path(path)
    digest = digest or sha256_file(path)
    write_sidecar(path, digest)
    return digest


def verify_local(path: str | os.PathLike, spec: WeightSpec, force: bool = False) -> str:
    """Check ``path`` against ``spec`` and return its sha256.

    The size is checked first, then the full hash runs unless a sidecar describes the file as it is now (or
    ``force``); a match is recorded in the sidecar. A locally made model is checked against the digest
    recorded when it was made. A checkpoint the registry declares no digest for is pinned by its first check
    (the digest recorded, a warning logged) and checked against that record after. Raises
    WeightsIntegrityError on any mismatch (the message names file, expected and found sha256 and the command
    that gets the right file); hashing there is the error path only.
    """
    path = Path(path)
    expected = expected_digest(path, spec)
    st = path.stat()
    if spec.size is not None and st.st_size != spec.size:
        what = f"size {st.st_size} bytes, expected {spec.size} bytes: truncated or another file"
        raise WeightsIntegrityError(mismatch_message(path, spec, expected, "not computed (the size differs)", what))
    if expected is not None and not force and _sidecar_digest(path, st) == expected:
        return expected
    actual = sha256_file(path)
    if expected is None and spec.pin_on_first_fetch:
        write_sidecar(path, actual)
        log.warning(pin_message(spec, path, actual))
        return actual
    if actual != expected:
        raise WeightsIntegrityError(mismatch_message(path, spec, expected, actual, "corrupt or another file"))
    write_sidecar(path, actual)
    return actual


def require_verified(path: str | os.PathLike) -> Path:
    """A pipeline job's check before it loads weights: ``path``'s sidecar still describes it. A real
    checkpoint is never hashed on success (the verify rule hashed it once); one replaced or touched since is
    refused, with its found sha256 (hashed on this error path only) and the command that gets the right file
    or re-records it. A tiny model (MBs) is hashed and compared with the digest recorded at its creation; a
    full-size random one is treated as a real checkpoint whose digest is that record.
    """
    path = Path(path)
    spec = spec_for_file(path)
    if spec is None:
        raise ValueError(f"{path}: not a registered weight file ({', '.join(sorted(WEIGHTS))})")
    if not path.is_file():
        raise MissingWeightsError(missing_message(spec, path))
    record, st = _read_sidecar(path), path.stat()
    expected = expected_digest(path, spec)
    if record is None:
        how = (f"it has no creation record (made elsewhere, or the record was lost): recreate it with "
               f"`{fetch_command(spec, path.absolute().parent)}`" if spec.made_locally
               else f"run `fmwsss weights verify {spec.name}`")
        raise WeightsIntegrityError(f"{path}: never verified (no {sidecar_path(path).name}); {how}")
    if not spec.tiny and record["sha256"] == expected and _describes(record, st):
        return path
    found = sha256_file(path)
    if spec.tiny and found == expected:
        return path
    if found != expected:
        raise WeightsIntegrityError(mismatch_message(path, spec, expected, found, "replaced after it was verified"))
    raise WeightsIntegrityError(
        f"{path}: modified (size or mtime) after it was verified; its bytes still hash to the expected sha256 "
        f"{expected}: re-record it with `fmwsss weights verify {spec.name}`"
    )


def load_failure_message(path: str | os.PathLike, exc: BaseException) -> str:
    """Why torch could not read ``path``, for a loader's error. Torch's own hint to retry with
    ``weights_only=False`` is dropped (that runs arbitrary code from the file): a file the safe loader cannot
    read is the wrong file. For a registered file, the expected and found sha256 and the fetch command."""
    text = str(exc).strip()
    reason = (
        "not a checkpoint torch's safe loader can read (corrupt, truncated or another format)"
        if "weights_only" in text else (text.splitlines() or [type(exc).__name__])[0]
    )
    path = Path(path)
    spec = spec_for_file(path)
    if spec is None or not path.is_file():
        return f"cannot load {path}: {reason}"
    expected, found = expected_digest(path, spec), sha256_file(path)
    if found == expected:
        return (f"cannot load {path}: {reason}; its sha256 {found} is the expected one for {spec.name}, so "
                f"the file is right and the installed torch/open_clip/segment-anything cannot read it")
    return mismatch_message(path, spec, expected, found, f"cannot load: {reason}")


def weight_status(name: str, root: str | os.PathLike | None = None) -> str:
    """Local state, hashing no real checkpoint: "missing"; "present" only when a sidecar describes the file as
    it is now with the expected digest (a tiny model: its bytes hash to the digest recorded when it was made;
    a full-size random model: its creation or verification record); "mismatch" when its size differs from the
    registry's or the bytes are other than recorded; "unverified" otherwise (never verified, or changed since)."""
    spec = get_weight(name)
    path = local_path(name, root)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if spec.size is not None and st.st_size != spec.size:
        return "mismatch"
    record = _read_sidecar(path)
    if spec.tiny and record is not None:
        return "present" if sha256_file(path) == record["sha256"] else "mismatch"
    if not _describes(record, st):
        return "unverified"
    return "present" if record["sha256"] == expected_digest(path, spec) else "mismatch"


def fetch_command(spec: WeightSpec, root: Path) -> str:
    """The command that puts ``spec`` under ``root`` (``--dir`` only when ``root`` is not the default)."""
    verb = "make-tiny" if spec.tiny else f"make-random {spec.name}" if spec.made_locally else f"fetch {spec.name}"
    suffix = "" if root == weights_dir() else f" --dir {root}"
    return f"fmwsss weights {verb}{suffix}"


def missing_message(spec: WeightSpec, path: Path, reason: str = "") -> str:
    """What to download, where to put it and which command does it, for a checkpoint not at ``path``."""
    head = f"{spec.name} weights not found at {path}" + (f" ({reason})" if reason else "")
    if spec.made_locally:
        command = fetch_command(spec, path.parent)
        return f"{head}. Random-weight test models are created locally, never downloaded: run `{command}`."
    digest = (f"sha256 must be {spec.sha256}" if spec.sha256 is not None else
              "sha256: not declared by the registry yet (the first fetch or verify records it)")
    lines = [
        f"{head}.",
        f"  download: {spec.url}",
        f"  put it at: {path}",
        f"  {digest}" + (f" ({spec.size} bytes)" if spec.size is not None else ""),
        f"  or run: {fetch_command(spec, path.parent)}",
    ]
    if path.parent == (Path.cwd() / DEFAULT_WEIGHTS_DIR).absolute():
        lines.append(f"  or run: snakemake --cores 1 {DEFAULT_WEIGHTS_DIR / spec.filename}")
    return "\n".join(lines)


def require_local(name: str, root: str | os.PathLike | None = None) -> Path:
    """Return the verified local checkpoint ``name``; raise MissingWeightsError saying how to get it.

    Real weights and full-size random models are size- and sha256-checked (hash cached in the sidecar); tiny
    ones need only exist.
    """
    spec = get_weight(name)
    path = local_path(name, root)
    if not path.is_file():
        raise MissingWeightsError(missing_message(spec, path))
    if not spec.tiny:
        verify_local(path, spec)
    return path

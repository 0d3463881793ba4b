"""shardsync: keep Parquet training datasets byte-identical across object stores.

The Python face of the ``shardsync`` command line, over the same Rust library::

    import shardsync

    report = shardsync.sync("s3://east/tokenized/v7", "s3://west/tokenized/v7")
    shardsync.require_consistent("s3://east/tokenized/v7", "s3://west/tokenized/v7")
    trainer.fit()

* :func:`sync` copies what differs, verifies it, commits the destination manifest last.
* :func:`check` compares two datasets, :func:`verify` one store against its own manifest,
  :func:`diff` says what a sync would do; none of them writes.
* :func:`require_consistent` is the one line before ``trainer.fit()``: it raises
  :class:`DriftError` unless the destination holds exactly the source's dataset.
* :class:`Manifest` builds or loads a dataset version; its ``digest`` names it.

URLs: ``s3://bucket/prefix``, ``gs://...``, ``az://...``, ``file:///abs/path`` or a local path,
``memory://name``, or a named remote (``east:tokenized/v7``). Store options are dicts of the keys
the CLI's ``--src-opt``/``--dst-opt`` take (``endpoint``, ``region``, ``access_key_id``,
``secret_access_key``, ``allow_http``, ``profile``, ...); ``AWS_*``/``GOOGLE_*``/``AZURE_*``
environment variables are the fallback. No message or ``repr`` ever shows a credential.

The GIL is released while Rust works; calls from several threads run at once. Ctrl-C stops a
call: a sync commits what it verified and raises :class:`Interrupted` (a ``KeyboardInterrupt``).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._native import Finding, Plan, PlanItem, ProgressEvent, Report, ShardEntry
from ._progress import TqdmProgress
from .errors import (
    ConfigError,
    ConflictError,
    DriftError,
    Error,
    IncompleteError,
    Interrupted,
    ManifestError,
    RefusedError,
    ShardError,
    StoreError,
)

__version__: str = _native.__version__

__all__ = [
    "sync",
    "check",
    "MiB",
    "verify",
    "diff",
    "require_consistent",
    "Manifest",
    "ShardEntry",
    "Report",
    "Finding",
    "Plan",
    "PlanItem",
    "ProgressEvent",
    "TqdmProgress",
    "Error",
    "ConfigError",
    "RefusedError",
    "StoreError",
    "ManifestError",
    "ConflictError",
    "ShardError",
    "IncompleteError",
    "DriftError",
    "Interrupted",
]

#: Store options: the keys of the CLI's ``--src-opt``/``--dst-opt``; values are strings (a bool
#: is passed as ``true``/``false``, a number as its digits).
StoreOptions = Mapping[str, Union[str, bool, int]]
#: Bytes in a mebibyte, for sizes: ``part_size=16 * shardsync.MiB``.
MiB = 1024 * 1024
#: A progress callback, or ``True`` for tqdm bars.
ProgressArg = Union[Callable[[ProgressEvent], object], bool, None]


def _options(options: Optional[StoreOptions]) -> Optional[Sequence[Tuple[str, str]]]:
    """Store options as the native layer takes them (``KEY``, ``VALUE`` pairs)."""
    if options is None:
        return None
    pairs = []
    for key, value in options.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((str(key), str(value)))
    return pairs


def _jobs(jobs: Optional[int], default: int) -> int:
    """``jobs``, else ``$SHARDSYNC_JOBS``, else the CLI's default for the command."""
    if jobs is not None:
        if jobs < 1:
            raise ConfigError(f"jobs must be at least 1, not {jobs}")
        return jobs
    env = os.environ.get("SHARDSYNC_JOBS", "")
    if env.strip():
        try:
            return max(1, int(env))
        except ValueError:
            raise ConfigError(f"SHARDSYNC_JOBS={env!r} is not a number") from None
    return default


def _progress(progress: ProgressArg) -> Optional[Callable[[ProgressEvent], object]]:
    """The callback for ``progress``: itself, tqdm bars for ``True``, nothing for ``None``."""
    if progress is True:
        return TqdmProgress()
    if progress is None or progress is False:
        return None
    if not callable(progress):
        raise ConfigError("progress must be a callable, True or None")
    return progress


def sync(
    src: str,
    dst: str,
    *,
    full: bool = False,
    delete: bool = False,
    dry_run: bool = False,
    jobs: Optional[int] = None,
    verify: str = "size",
    src_options: Optional[StoreOptions] = None,
    dst_options: Optional[StoreOptions] = None,
    progress: ProgressArg = None,
    allow_empty_source: bool = False,
    max_delete: Union[int, str, None] = None,
    strict: bool = False,
    strict_parquet: bool = False,
    follow_symlinks: bool = False,
    part_size: int = 8 * MiB,
    multipart_threshold: int = 8 * MiB,
    max_memory: int = 256 * MiB,
    write_source_manifest: bool = True,
    include: Union[str, Sequence[str], None] = None,
    exclude: Union[str, Sequence[str], None] = None,
    min_size: Optional[int] = None,
    max_size: Optional[int] = None,
    max_transfer: Optional[int] = None,
    bwlimit: Optional[int] = None,
    bwlimit_burst: Optional[int] = None,
    egress_price: Optional[float] = None,
) -> Report:
    """Make ``dst`` hold exactly the dataset at ``src``, and prove it (``shardsync sync``).

    Only objects that differ are copied (all of them with ``full=True``), ``jobs`` at once
    (default 64, or ``$SHARDSYNC_JOBS``); bytes are hashed while they stream and a copy that
    does not hash to the source's SHA-256 never lands. Each copy is then proven on the
    destination (``verify="size"``: size and stored hash; ``"deep"``: its bytes read back).
    The destination manifest is written last, conditionally; ``delete=True`` then removes the
    destination's extras (at most half of it unless ``max_delete`` says otherwise: a count,
    or a share such as ``"25%"``). ``dry_run=True`` plans and writes nothing.

    Returns the :class:`Report`. ``report.consistent`` is False when the destination still
    holds extras (pass ``delete=True``) or, for a dry run, when there is work to do.

    Raises :class:`IncompleteError` (with the report) when shards failed, naming each and its
    cause; :class:`Interrupted` on Ctrl-C, after the sync has committed what it verified;
    :class:`ConfigError` for a bad URL or option, :class:`RefusedError` for an empty source
    (``allow_empty_source=True`` accepts one) or too many deletes, :class:`StoreError` when a
    store cannot be reached, :class:`ConflictError` when another writer got in the way.

    ``include``/``exclude`` (a glob or a list of them, rclone's meaning: ``"*.parquet"`` at any
    depth, ``"/train/**"`` from the root; an exclude wins) and ``min_size``/``max_size``
    (bytes) choose a view of both sides: what lies outside it is not copied, deleted or
    reported, and the destination manifest and the report name the filter.
    ``max_transfer`` (bytes) stops starting copies once those started hold that much (raises
    :class:`IncompleteError`, ``report.max_transfer_reached``); ``bwlimit`` caps the source
    reads of all copies together at that many bytes per second, with bursts of
    ``bwlimit_burst`` (default: one second's worth). ``egress_price`` (USD per GiB) puts
    ``estimated_cost_usd`` beside ``bytes_to_transfer`` in the report.

    ``progress`` is a callable given each :class:`ProgressEvent` on this thread, or ``True``
    for tqdm bars; an exception it raises stops the sync as Ctrl-C does and is raised here. ``src_options``/``dst_options`` are store options (see the module doc).
    ``strict`` makes keys that cannot be carried an error; ``strict_parquet`` fails a
    ``.parquet`` object whose footer does not decode; ``follow_symlinks`` follows symlinks in
    a local source folder. Objects up to ``multipart_threshold`` bytes go in one PUT, larger
    ones in parts of ``part_size`` (at least 5 MiB); copies in flight hold at most
    ``max_memory`` bytes. ``write_source_manifest=False`` leaves the source untouched (the
    refreshed source manifest is not written back).
    """
    return _native.sync(
        src,
        dst,
        full=full,
        delete=delete,
        dry_run=dry_run,
        jobs=_jobs(jobs, 64),
        verify=verify,
        src_options=_options(src_options),
        dst_options=_options(dst_options),
        progress=_progress(progress),
        allow_empty_source=allow_empty_source,
        max_delete=None if max_delete is None else str(max_delete),
        strict=strict,
        strict_parquet=strict_parquet,
        follow_symlinks=follow_symlinks,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        max_memory=max_memory,
        write_source_manifest=write_source_manifest,
        filter=_view(include, exclude, min_size, max_size),
        max_transfer=max_transfer,
        bwlimit=None if bwlimit is None else (bwlimit, bwlimit_burst or bwlimit),
        egress_price=egress_price,
    )


def _patterns(value: Union[str, Sequence[str], None]) -> "list[str]":
    """One glob or several, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _view(include, exclude, min_size, max_size):  # type: ignore[no-untyped-def]
    """The filter arguments as ``_native`` takes them."""
    return (_patterns(include), _patterns(exclude), min_size, max_size)


def check(
    src: str,
    dst: str,
    *,
    deep: bool = False,
    jobs: Optional[int] = None,
    src_options: Optional[StoreOptions] = None,
    dst_options: Optional[StoreOptions] = None,
    progress: ProgressArg = None,
    allow_empty_source: bool = False,
    strict: bool = False,
    strict_schema: bool = False,
    strict_parquet: bool = False,
    follow_symlinks: bool = False,
    include: Union[str, Sequence[str], None] = None,
    exclude: Union[str, Sequence[str], None] = None,
    min_size: Optional[int] = None,
    max_size: Optional[int] = None,
) -> Report:
    """Compare two datasets without copying anything (``shardsync check``).

    Shallow by default: manifests, listings, sizes and stored hashes. ``deep=True`` re-hashes
    every byte on both sides. Returns the :class:`Report`; ``report.consistent`` is the CI gate
    (the CLI exits 0 exactly when it is True), ``report.findings`` name each differing path.
    ``strict_schema`` makes shards whose schema differs from their folder's majority drift;
    ``include``/``exclude``/``min_size``/``max_size`` compare only that view (pass the filter a
    sync used; a destination manifest written with another filter is named in a warning); the
    other arguments are as for :func:`sync`. Raises :class:`Error` subclasses when the
    comparison cannot be made (a bad URL, an unreachable store).
    """
    return _native.check(
        src,
        dst,
        deep=deep,
        jobs=_jobs(jobs, 16),
        src_options=_options(src_options),
        dst_options=_options(dst_options),
        progress=_progress(progress),
        allow_empty_source=allow_empty_source,
        strict=strict,
        strict_schema=strict_schema,
        strict_parquet=strict_parquet,
        follow_symlinks=follow_symlinks,
        filter=_view(include, exclude, min_size, max_size),
    )


def verify(
    url: str,
    *,
    deep: bool = False,
    jobs: Optional[int] = None,
    options: Optional[StoreOptions] = None,
    progress: ProgressArg = None,
    strict: bool = False,
    strict_schema: bool = False,
    strict_parquet: bool = False,
    follow_symlinks: bool = False,
) -> Report:
    """Check one store against its own manifest (``shardsync verify``).

    Every object the manifest names must be there with its size (``deep=True``: its SHA-256,
    every byte re-read), and nothing else. Returns the :class:`Report`; raises
    :class:`ManifestError` when the dataset has no manifest.
    """
    return _native.verify(
        url,
        deep=deep,
        jobs=_jobs(jobs, 16),
        options=_options(options),
        progress=_progress(progress),
        strict=strict,
        strict_schema=strict_schema,
        strict_parquet=strict_parquet,
        follow_symlinks=follow_symlinks,
    )


def diff(
    src: str,
    dst: str,
    *,
    jobs: Optional[int] = None,
    src_options: Optional[StoreOptions] = None,
    dst_options: Optional[StoreOptions] = None,
    progress: ProgressArg = None,
    allow_empty_source: bool = False,
    strict: bool = False,
    follow_symlinks: bool = False,
    include: Union[str, Sequence[str], None] = None,
    exclude: Union[str, Sequence[str], None] = None,
    min_size: Optional[int] = None,
    max_size: Optional[int] = None,
    egress_price: Optional[float] = None,
) -> Plan:
    """What a sync would do, path by path (``shardsync diff``); nothing is copied.

    Returns the :class:`Plan`: ``plan.items`` (path, state, sizes), ``plan.counts``,
    ``plan.is_clean``; ``plan.to_dict()`` also holds ``bytes_to_transfer`` and, with
    ``egress_price`` (USD per GiB), ``estimated_cost_usd``. Source objects whose manifest entry
    is stale are hashed to decide. The filter arguments are as for :func:`sync`.
    """
    return _native.diff(
        src,
        dst,
        jobs=_jobs(jobs, 16),
        src_options=_options(src_options),
        dst_options=_options(dst_options),
        progress=_progress(progress),
        allow_empty_source=allow_empty_source,
        strict=strict,
        follow_symlinks=follow_symlinks,
        filter=_view(include, exclude, min_size, max_size),
        egress_price=egress_price,
    )


def require_consistent(
    src: str,
    dst: str,
    *,
    deep: bool = False,
    jobs: Optional[int] = None,
    src_options: Optional[StoreOptions] = None,
    dst_options: Optional[StoreOptions] = None,
    progress: ProgressArg = None,
    strict_schema: bool = False,
) -> Report:
    """Raise :class:`DriftError` unless ``dst`` holds exactly the dataset at ``src``.

    The one line a training script adds before ``trainer.fit()``: a :func:`check` whose
    inconsistent report becomes an exception carrying it (``err.report``). Returns the
    consistent report, whose ``src_digest`` names the dataset version to log.
    """
    report = check(
        src,
        dst,
        deep=deep,
        jobs=jobs,
        src_options=src_options,
        dst_options=dst_options,
        progress=progress,
        strict_schema=strict_schema,
    )
    if not report.consistent:
        raise DriftError(_drift_message(report), report=report)
    return report


def _drift_message(report: Report) -> str:
    """``DST does not hold SRC's dataset: N finding(s): kind path, ...``."""
    findings = [f for f in report.findings if not f.is_warning]
    named = ", ".join(f"{f.kind} {f.path}" for f in findings[:5])
    more = f", and {len(findings) - 5} more" if len(findings) > 5 else ""
    return (
        f"{report.dst} does not hold the dataset at {report.src}: "
        f"{len(findings)} finding(s): {named}{more}"
    )


class Manifest:
    """A dataset version: every object's path, size, SHA-256 and Parquet facts (rows, row
    groups, schema fingerprint), and a ``digest`` that names the version in one string.

    Iterating yields :class:`ShardEntry` objects in path order; ``len()`` is the number of
    objects; :meth:`get` finds one by path.
    """

    __slots__ = ("_native",)

    def __init__(self, native: "_native.Manifest") -> None:
        self._native = native

    @classmethod
    def build(
        cls,
        url: str,
        *,
        options: Optional[StoreOptions] = None,
        jobs: Optional[int] = None,
        progress: ProgressArg = None,
        strict: bool = False,
        strict_parquet: bool = False,
        follow_symlinks: bool = False,
    ) -> "Manifest":
        """Hash the dataset at ``url`` and write ``<url>/_shardsync/manifest.json``
        (``shardsync manifest build``). Entries of the previous manifest whose objects did not
        change (same size, mtime, ETag) are reused, not re-hashed. ``strict_parquet`` refuses to
        write a manifest when a ``.parquet`` footer does not decode."""
        return cls(
            _native.build_manifest(
                url,
                jobs=_jobs(jobs, 8),
                options=_options(options),
                progress=_progress(progress),
                strict=strict,
                strict_parquet=strict_parquet,
                follow_symlinks=follow_symlinks,
            )
        )

    @classmethod
    def load(cls, url: str, *, options: Optional[StoreOptions] = None) -> "Manifest":
        """The manifest committed at ``url``; :class:`ManifestError` when it has none."""
        return cls(_native.load_manifest(url, options=_options(options), follow_symlinks=False))

    @property
    def digest(self) -> str:
        """SHA-256 over the sorted ``(path, size, sha256)`` triples: the version's name."""
        return self._native.digest

    @property
    def dataset(self) -> str:
        """The dataset's URL (credentials removed) when the manifest was built."""
        return self._native.dataset

    @property
    def created_at(self) -> str:
        """When the manifest was built (RFC 3339)."""
        return self._native.created_at

    @property
    def totals(self) -> "dict[str, int]":
        """``{"shards": Parquet shards, "files": all objects, "bytes": ..., "rows": ...}``."""
        return self._native.totals

    def get(self, path: str) -> Optional[ShardEntry]:
        """The entry for ``path`` (relative to the dataset root), or ``None``."""
        return self._native.get(path)

    def to_dict(self) -> "dict[str, object]":
        """The manifest as a dict, as its JSON holds it."""
        return self._native.to_dict()

    def to_json(self) -> str:
        """The manifest's JSON, as stored under ``_shardsync/manifest.json``."""
        return self._native.to_json()

    def __iter__(self) -> Iterator[ShardEntry]:
        return iter(self._native)

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return repr(self._native)

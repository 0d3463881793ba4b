"""Type stubs of the native half (``shardsync._native``). The public API is ``shardsync``."""

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

__version__: str

_Options = Optional[Sequence[Tuple[str, str]]]
_Callback = Optional[Callable[["ProgressEvent"], object]]
# include, exclude, min_size, max_size
_View = Tuple[List[str], List[str], Optional[int], Optional[int]]

class ProgressEvent:
    """One engine event and the running totals of its stage."""

    @property
    def kind(self) -> str:
        """``stage_started``, ``bytes``, ``object_done`` or ``stage_finished``."""
    @property
    def stage(self) -> Optional[str]:
        """``hashing``, ``proving``, ``copying`` or ``footers``."""
    @property
    def path(self) -> Optional[str]:
        """The object just done (``object_done`` only), relative to the dataset root."""
    @property
    def bytes(self) -> int:
        """Bytes moved since the previous event (``bytes`` only; negative when a failed
        attempt's bytes are taken back before a retry)."""
    @property
    def bytes_done(self) -> int:
        """Bytes of the stage done so far."""
    @property
    def bytes_total(self) -> int:
        """Bytes the stage will move or read."""
    @property
    def objects_done(self) -> int:
        """Objects of the stage done so far."""
    @property
    def objects_total(self) -> int:
        """Objects the stage will handle."""

class Finding:
    """One problem the run found, about one path."""

    @property
    def path(self) -> str:
        """The object's path relative to the dataset root."""
    @property
    def kind(self) -> str:
        """``missing``, ``changed``, ``extra``, ``size_mismatch``, ``corrupt``,
        ``invalid_parquet``, ``unreadable_footer``, ``schema_drift`` or ``error``."""
    @property
    def detail(self) -> str:
        """What is wrong, for a person."""
    @property
    def is_warning(self) -> bool:
        """A warning is listed but does not make a report inconsistent."""

class Report:
    """A run's consistency report: what ``shardsync sync``, ``check`` and ``verify`` print."""

    @property
    def command(self) -> str:
        """``sync``, ``check`` or ``verify``."""
    @property
    def mode(self) -> str:
        """``incremental``, ``full``, ``dry-run``, ``shallow`` or ``deep``."""
    @property
    def src(self) -> Optional[str]:
        """The source URL (credentials removed)."""
    @property
    def dst(self) -> Optional[str]:
        """The destination URL (credentials removed); ``None`` for ``verify``."""
    @property
    def consistent(self) -> bool:
        """True when the destination holds exactly the source's dataset."""
    @property
    def src_digest(self) -> Optional[str]:
        """The source dataset's digest, when known."""
    @property
    def dst_digest(self) -> Optional[str]:
        """The destination manifest's digest (after the commit, for a sync)."""
    @property
    def findings(self) -> List[Finding]:
        """Per-object findings, sorted by kind and path."""
    @property
    def warnings(self) -> List[str]:
        """Things that did not fail the run but deserve a look."""
    @property
    def inconsistency(self) -> float:
        """C(A,B): the share of paths that differ between the two sides, after the run."""
    @property
    def seconds_per_shard(self) -> float:
        """E(A,B) = T/N: elapsed seconds per shard of the dataset."""
    @property
    def shards_total(self) -> int: ...
    @property
    def shards_copied(self) -> int: ...
    @property
    def shards_skipped(self) -> int: ...
    @property
    def shards_deleted(self) -> int: ...
    @property
    def shards_failed(self) -> int: ...
    @property
    def shards_not_started(self) -> int: ...
    @property
    def interrupted(self) -> bool: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def bytes_copied(self) -> int: ...
    @property
    def bytes_to_transfer(self) -> Optional[int]: ...
    @property
    def estimated_cost_usd(self) -> Optional[float]: ...
    @property
    def max_transfer_reached(self) -> bool: ...
    @property
    def elapsed_seconds(self) -> float: ...
    @property
    def committed(self) -> bool: ...
    @property
    def error(self) -> Optional[str]: ...
    def to_dict(self) -> Dict[str, object]:
        """The report as a dict: the CLI's ``--format json`` document."""
    def to_json(self) -> str:
        """The report as pretty JSON."""
    def to_markdown(self) -> str:
        """The report as Markdown, for CI summaries."""
    def to_text(self, color: bool = False) -> str:
        """The report as the CLI's text table."""

class ShardEntry:
    """One object of a dataset as its manifest records it."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def rows(self) -> Optional[int]: ...
    @property
    def row_groups(self) -> Optional[int]: ...
    @property
    def schema(self) -> Optional[str]: ...
    @property
    def parquet_error(self) -> Optional[str]: ...
    @property
    def is_parquet(self) -> bool: ...
    def to_dict(self) -> Dict[str, object]: ...

class Manifest:
    """The native manifest; ``shardsync.Manifest`` wraps it."""

    @property
    def digest(self) -> str: ...
    @property
    def dataset(self) -> str: ...
    @property
    def created_at(self) -> str: ...
    @property
    def totals(self) -> Dict[str, int]: ...
    def get(self, path: str) -> Optional[ShardEntry]: ...
    def to_dict(self) -> Dict[str, object]: ...
    def to_json(self) -> str: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> ShardEntry: ...
    def __iter__(self) -> Iterator[ShardEntry]: ...

class PlanItem:
    """One path of a plan."""

    @property
    def path(self) -> str: ...
    @property
    def state(self) -> str:
        """``new``, ``changed``, ``missing``, ``extra``, ``same`` or ``unproven``."""
    @property
    def src_size(self) -> Optional[int]: ...
    @property
    def dst_size(self) -> Optional[int]: ...

class Plan:
    """What a sync would do, path by path."""

    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...
    @property
    def is_clean(self) -> bool: ...
    @property
    def counts(self) -> Dict[str, int]: ...
    @property
    def items(self) -> List[PlanItem]: ...
    @property
    def warnings(self) -> List[str]: ...
    def to_dict(self) -> Dict[str, object]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[PlanItem]: ...

def sync(
    src: str,
    dst: str,
    *,
    full: bool,
    delete: bool,
    dry_run: bool,
    jobs: int,
    verify: str,
    src_options: _Options,
    dst_options: _Options,
    progress: _Callback,
    allow_empty_source: bool,
    max_delete: Optional[str],
    strict: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
    part_size: int,
    multipart_threshold: int,
    max_memory: int,
    write_source_manifest: bool,
    filter: _View,
    max_transfer: Optional[int],
    bwlimit: Optional[Tuple[int, int]],
    egress_price: Optional[float],
) -> Report: ...
def check(
    src: str,
    dst: str,
    *,
    deep: bool,
    jobs: int,
    src_options: _Options,
    dst_options: _Options,
    progress: _Callback,
    allow_empty_source: bool,
    strict: bool,
    strict_schema: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
    filter: _View,
) -> Report: ...
def verify(
    url: str,
    *,
    deep: bool,
    jobs: int,
    options: _Options,
    progress: _Callback,
    strict: bool,
    strict_schema: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
) -> Report: ...
def diff(
    src: str,
    dst: str,
    *,
    jobs: int,
    src_options: _Options,
    dst_options: _Options,
    progress: _Callback,
    allow_empty_source: bool,
    strict: bool,
    follow_symlinks: bool,
    filter: _View,
    egress_price: Optional[float],
) -> Plan: ...
def build_manifest(
    url: str,
    *,
    jobs: int,
    options: _Options,
    progress: _Callback,
    strict: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
) -> Manifest: ...
def load_manifest(url: str, *, options: _Options, follow_symlinks: bool) -> Manifest: ...

"""The exceptions shardsync raises.

Every error is a :class:`shardsync.Error`; its message names the store or the object and the
cause, never a credential. ``exit_code`` is what the ``shardsync`` command line exits with in
the same situation (2 an error, 1 drift, 130 interrupted), for scripts that hand it on.
Errors of a sync that ran carry its :class:`shardsync.Report` as ``report``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ._native import Report

__all__ = [
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


class _Carries:
    """The report a failed or interrupted run leaves, when it ran far enough to make one."""

    report: Optional["Report"]
    exit_code: int

    def _keep(self, report: Optional["Report"]) -> None:
        self.report = report


class Error(_Carries, Exception):
    """Base class of shardsync's errors (the CLI's exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, report: Optional["Report"] = None) -> None:
        super().__init__(message)
        self._keep(report)


class ConfigError(Error, ValueError):
    """Bad input: a URL, a store option, the remotes config file, an argument's value."""


class RefusedError(Error):
    """A refusal before anything is written: an empty source (a mistyped prefix?), a delete
    beyond the limit, source and destination that overlap."""


class StoreError(Error):
    """A store operation failed (unreachable, access denied, no such bucket, disk full)."""


class ManifestError(Error):
    """A manifest is missing where one is needed, or is not one shardsync can trust."""


class ConflictError(Error):
    """Another writer changed the destination during the sync; nothing false was committed.
    Re-run the sync."""


class ShardError(Error):
    """One object failed: its bytes, its size, its path or its Parquet footer."""


class IncompleteError(ShardError):
    """A sync ran but did not leave the source's whole dataset: shards failed (each is named
    in the message and in ``report.findings``), or the destination refused writes. What was
    verified is committed; the manifest claims nothing else."""


class DriftError(Error):
    """The destination does not hold exactly the source's dataset (the CLI's exit code 1).
    ``report`` says what differs."""

    exit_code = 1


class Interrupted(_Carries, KeyboardInterrupt):
    """Ctrl-C (or a progress callback that raised ``KeyboardInterrupt``) stopped the call.

    A ``KeyboardInterrupt``, so it ends a script as Ctrl-C does. For a sync, what was copied
    and verified is committed and nothing unverified is claimed; ``report`` says how far it
    got (``None`` when it stopped before writing anything). The same call finishes the job.
    """

    exit_code = 130

    def __init__(self, message: str, report: Optional["Report"] = None) -> None:
        super().__init__(message)
        self._keep(report)

"""Progress bars for ``progress=True``: one tqdm bar per stage of the work."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ._native import ProgressEvent


class TqdmProgress:
    """A progress callback that draws a tqdm bar per stage (hashing, proving, copying,
    footers): bytes with rate and ETA, and objects done out of the stage's total.

    ``progress=True`` uses one; pass your own to set tqdm's arguments, e.g.
    ``shardsync.sync(src, dst, progress=TqdmProgress(file=sys.stdout, leave=False))``.
    Without tqdm installed it draws nothing and says so once on stderr.
    """

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self._kwargs = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, **tqdm_kwargs}
        self._bar: Optional[Any] = None
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            print("shardsync: progress=True needs tqdm (pip install tqdm)", file=sys.stderr)
            self._tqdm = None
        else:
            self._tqdm = tqdm

    def __call__(self, event: "ProgressEvent") -> None:
        if self._tqdm is None:
            return
        if event.kind == "stage_started":
            self.close()
            self._bar = self._tqdm(total=event.bytes_total, desc=event.stage, **self._kwargs)
        elif self._bar is None:
            return
        elif event.kind == "bytes":
            self._bar.update(event.bytes)
        elif event.kind == "object_done":
            self._bar.set_postfix_str(
                f"{event.objects_done}/{event.objects_total} objects", refresh=False
            )
        elif event.kind == "stage_finished":
            self.close()

    def close(self) -> None:
        """Close the current stage's bar, if one is open."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

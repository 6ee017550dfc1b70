"""What one loader invocation did: returned by `run_load`, carried by `LoadFailed`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LoadResult:
    """What one invocation did. `pending` is non-empty only on a `LoadFailed` (its `.result`)."""

    run_id: str
    loaded: list[int] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)  # keys into raw._deletions, per table
    bytes: int = 0
    already_loaded: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

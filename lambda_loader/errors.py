"""Why a manifest could not be loaded. Every message names the manifest and, when one is to
blame, the file, so the alert alone tells an operator where to look."""

from __future__ import annotations

from lambda_loader.result import LoadResult


class ManifestLoadError(Exception):
    """A manifest cannot be loaded as it stands (bad manifest, bad file, lossy schema change)."""

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class ManifestError(ManifestLoadError):
    """The manifest itself is unreadable or does not follow `totes-manifest/1`."""


class FileCheckError(ManifestLoadError):
    """A data file is missing, unreadable, or does not match what its manifest says."""


class SchemaChangeError(ManifestLoadError):
    """The source changed a column's type in a way the raw table cannot take without loss."""


class LoadFailed(RuntimeError):
    """`run_load` stopped at a manifest. Earlier manifests stay loaded; this one and later wait.

    `result` holds what this invocation did load before it stopped."""

    def __init__(
        self, message: str, *, seq: int, manifest_key: str, file: str | None, result: LoadResult
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.manifest_key = manifest_key
        self.file = file
        self.result = result

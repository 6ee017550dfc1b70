"""The loader: committed manifests in the ingestion bucket → the warehouse's `raw` tables.

`load.run_load` is the entry point (used by the Lambda handler, `totes load` and `totes run`).
Each module has one job: `manifest` (find and parse manifests), `fetch` (download and verify a
data file), `rawschema` (create and evolve raw tables), `copyin` (Arrow → CSV → COPY),
`ledger` (what is loaded or skipped), `failures` (what failed), `metrics` (CloudWatch).
"""

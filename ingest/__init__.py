"""The extract step: changed totesys rows → Parquet in the ingestion bucket, committed by a
manifest. Entry points: `ingest.extract.run_extract`, `ingest.handler.lambda_handler`,
`totes extract` (ingest/commands.py). Design notes: ingest/README.md."""

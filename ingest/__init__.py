"""The extract step: changed totesys rows → Parquet in the ingestion bucket, committed by a
manifest. Entry points: `ingest.extract.run_extract`, `ingest.handler.lambda_handler`,
`totes extract` (defined with the rest of the CLI in totes/cli.py). Design notes:
ingest/README.md."""

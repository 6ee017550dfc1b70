"""The publish step: new mart rows as Parquet in the processed bucket, registered in Glue,
and the dbt docs site."""

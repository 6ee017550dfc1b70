-- One row per distinct version (transaction_id, last_updated) of transaction; see macro dedupe_versions.
{{
    config(
        indexes=[
            {'columns': ['transaction_id', 'last_updated'], 'unique': true},
            {'columns': ['version_id'], 'unique': true},
            {'columns': ['_manifest_seq']},
        ]
    )
}}

{{ dedupe_versions(ref('stg_totesys__transaction'), 'transaction_id') }}

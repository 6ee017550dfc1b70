-- Every distinct version (key, last_updated, row hash), once: see macro dedupe_versions.
{{
    config(
        indexes=[
            {'columns': ['counterparty_id', 'last_updated', '_row_hash'], 'unique': true},
            {'columns': ['version_id'], 'unique': true},
            {'columns': ['_manifest_seq']},
        ]
    )
}}

{{ dedupe_versions(ref('stg_totesys__counterparty'), 'counterparty_id') }}

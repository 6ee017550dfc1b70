-- One row per distinct version (address_id, last_updated) of address; see macro dedupe_versions.
{{
    config(
        indexes=[
            {'columns': ['address_id', 'last_updated'], 'unique': true},
            {'columns': ['version_id'], 'unique': true},
            {'columns': ['_manifest_seq']},
        ]
    )
}}

{{ dedupe_versions(ref('stg_totesys__address'), 'address_id') }}

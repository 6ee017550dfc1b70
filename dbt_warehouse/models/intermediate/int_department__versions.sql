-- One row per distinct version (department_id, last_updated) of department; see macro dedupe_versions.
{{
    config(
        indexes=[
            {'columns': ['department_id', 'last_updated'], 'unique': true},
            {'columns': ['version_id'], 'unique': true},
            {'columns': ['_manifest_seq']},
        ]
    )
}}

{{ dedupe_versions(ref('stg_totesys__department'), 'department_id') }}

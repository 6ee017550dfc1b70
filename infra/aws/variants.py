"""The synthesised variants `make lint` scans with checkov: the default (no VPC), and a private
deployment in the warehouse VPC (endpoints, security groups, no NAT gateway).

`python -m infra.aws.variants OUTDIR` synthesises each into OUTDIR/<variant>/, offline, with
the stack's configuration from the variant alone (TOTES_* variables are ignored, so a shell
set up for a deploy scans the same templates as CI). tests/infra synthesise the same contexts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from infra.aws.app import build_app

# A private deployment's context, with made-up but well-formed ids (nothing is looked up).
PRIVATE_EXAMPLE = {
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
    "route_table_ids": "rtb-0aaaaaaaaaaaaaaaa,rtb-0bbbbbbbbbbbbbbbb",
    "database_security_group_ids": "sg-0dddddddddddddddd",
}
VARIANTS: dict[str, dict[str, str]] = {"default": {}, "vpc": PRIVATE_EXAMPLE}


def synth_variants(root: Path) -> dict[str, list[Path]]:
    """Each variant's templates, synthesised under root/<variant>/."""
    for key in [k for k in os.environ if k.startswith("TOTES_")]:
        del os.environ[key]
    templates: dict[str, list[Path]] = {}
    for name, context in VARIANTS.items():
        assembly = build_app(context=dict(context), outdir=str(root / name)).synth()
        templates[name] = [Path(assembly.directory) / s.template_file for s in assembly.stacks]
    return templates


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m infra.aws.variants OUTDIR", file=sys.stderr)
        return 2
    for name, paths in synth_variants(Path(argv[0])).items():
        for path in paths:
            print(f"{name}: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

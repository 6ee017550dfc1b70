"""The local AWS endpoint: moto in server mode on 127.0.0.1, with S3 kept on disk.

moto holds everything in memory. So that `totes down` then `totes up` keeps the
lake, this process restores the buckets from a snapshot folder when it starts
and writes them back when it is asked to stop (SIGTERM) and every few seconds
while objects change. Run as `python -m infra.local.s3_server --port N --state DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

SNAPSHOT_INTERVAL_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True, help="folder holding the S3 snapshot")
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    s3 = _client(args.port)
    snapshot = args.state / "s3"
    _restore(s3, snapshot)
    (args.state / "s3_server.ready").write_text(str(os.getpid()))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last_digest = _digest(s3)
    while not stop.wait(SNAPSHOT_INTERVAL_SECONDS):
        try:
            digest = _digest(s3)
            if digest != last_digest:
                _dump(s3, snapshot)
                last_digest = digest
        except ClientError:  # a bucket or object deleted mid-listing: the next round retries
            continue
    _dump(s3, snapshot)
    (args.state / "s3_server.ready").unlink(missing_ok=True)
    server.stop()


def _client(port: int) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="eu-west-2",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _objects(s3: Any, bucket: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.extend(page.get("Contents", []))
    return found


def _digest(s3: Any) -> str:
    """A cheap fingerprint of every bucket's listing, to snapshot only after changes."""
    h = hashlib.sha256()
    for bucket in sorted(b["Name"] for b in s3.list_buckets()["Buckets"]):
        h.update(bucket.encode())
        for obj in _objects(s3, bucket):
            h.update(f"{obj['Key']}|{obj['ETag']}|{obj['Size']}".encode())
    return h.hexdigest()


def _dump(s3: Any, snapshot: Path) -> None:
    """Write objects not yet on disk, then swap in a new index; a crash keeps the old index."""
    blobs = snapshot / "objects"
    blobs.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, str]] = {}
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        index[bucket] = {}
        for obj in _objects(s3, bucket):
            name = hashlib.sha256(f"{bucket}/{obj['Key']}/{obj['ETag']}".encode()).hexdigest()
            if not (blobs / name).exists():
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                (blobs / f"{name}.tmp").write_bytes(body)
                (blobs / f"{name}.tmp").rename(blobs / name)
            index[bucket][obj["Key"]] = name
    (snapshot / "index.json.tmp").write_text(json.dumps(index))
    (snapshot / "index.json.tmp").rename(snapshot / "index.json")
    referenced = {name for keys in index.values() for name in keys.values()}
    for blob in blobs.iterdir():
        if blob.name not in referenced:
            blob.unlink()


def _restore(s3: Any, snapshot: Path) -> None:
    index_file = snapshot / "index.json"
    if not index_file.exists():
        return
    for bucket, keys in json.loads(index_file.read_text()).items():
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        for key, name in keys.items():
            s3.put_object(Bucket=bucket, Key=key, Body=(snapshot / "objects" / name).read_bytes())


if __name__ == "__main__":
    main()

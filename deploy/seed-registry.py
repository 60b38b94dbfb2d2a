#!/usr/bin/env python3
"""Push a tiny but valid OCI image under several tags to a registry over the distribution HTTP API.

Used by deploy/quickstart.sh so the quickstart needs nothing but python3 and a registry.
Usage: seed-registry.py BASE_URL REPOSITORY TAG [TAG ...]
Each tag gets its own manifest (its config carries the tag and a distinct `created` time).
"""
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as response:
        return response.status, response.headers


def upload_blob(base, repository, data):
    _, headers = request("POST", f"{base}/v2/{repository}/blobs/uploads/")
    location = headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    request("PUT", f"{location}{separator}digest={digest(data)}", data,
            {"Content-Type": "application/octet-stream"})


def layer():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        content = b"hello from tagwatch's quickstart\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        archive.addfile(info, io.BytesIO(content))
    tar = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as stream:
        stream.write(tar)
    return compressed.getvalue(), digest(tar)


def main():
    base, repository, tags = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3:]
    layer_bytes, diff_id = layer()
    upload_blob(base, repository, layer_bytes)
    for day, tag in enumerate(tags, start=1):
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "created": f"2024-01-{day:02d}T00:00:00Z",
            "config": {"Labels": {"org.opencontainers.image.version": tag}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }, sort_keys=True).encode()
        upload_blob(base, repository, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": digest(layer_bytes), "size": len(layer_bytes)}],
        }, sort_keys=True).encode()
        request("PUT", f"{base}/v2/{repository}/manifests/{tag}", manifest, {"Content-Type": MANIFEST})
        print(f"pushed {repository}:{tag}")


if __name__ == "__main__":
    main()

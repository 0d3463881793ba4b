#!/usr/bin/env python3
"""Validate shardsync manifests and reports against the JSON Schemas beside this script.

    python3 manifests/validate.py FILE...          # schema picked from each document
    python3 manifests/validate.py --schema manifest FILE...

A document whose "format" is "shardsync.manifest/..." is a manifest; one with "version" and
"command" is a report. Manifests also get the checks JSON Schema cannot express and that
shardsync applies when it reads one: entries sorted by path without duplicates, paths at most
1024 UTF-8 bytes, and `digest` equal to the SHA-256 of the sorted `path\\tsize\\tsha256\\n` lines.

Needs only `jsonschema` (pip install jsonschema). Exit code: 0 all valid, 1 some invalid,
2 usage or I/O error.
"""
import argparse
import datetime
import hashlib
import json
import pathlib
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("validate.py: needs the jsonschema package (pip install jsonschema)")

HERE = pathlib.Path(__file__).resolve().parent
SCHEMAS = {"manifest": "manifest.schema.json", "report": "report.schema.json"}


def format_checker():
    fc = jsonschema.Draft202012Validator.FORMAT_CHECKER
    if "date-time" not in fc.checkers:  # rfc3339-validator not installed: use the stdlib
        fc = jsonschema.FormatChecker()

        @fc.checks("date-time", raises=ValueError)
        def _date_time(value):
            if not isinstance(value, str):
                return True
            d = datetime.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
            return d.tzinfo is not None

    return fc


def kind_of(doc):
    if isinstance(doc, dict):
        if str(doc.get("format", "")).startswith("shardsync.manifest/"):
            return "manifest"
        if "version" in doc and "command" in doc:
            return "report"
    return None


def manifest_extra_checks(doc):
    """What shardsync checks beyond the schema (assumes the schema already passed)."""
    errors = []
    shards = doc["shards"]
    for i, s in enumerate(shards):
        if len(s["path"].encode("utf-8")) > 1024:
            errors.append(f"shards[{i}]: path longer than 1024 UTF-8 bytes")
        if i and shards[i - 1]["path"].encode() >= s["path"].encode():
            what = "duplicate path" if shards[i - 1]["path"] == s["path"] else "entries not sorted by path at"
            errors.append(f"shards[{i}]: {what} {s['path']!r}")
    h = hashlib.sha256()
    for s in shards:
        h.update(f"{s['path']}\t{s['size']}\t{s['sha256']}\n".encode("utf-8"))
    if doc["digest"] != h.hexdigest():
        errors.append(f"digest {doc['digest']} does not match its entries ({h.hexdigest()})")
    return errors


def explain(error):
    """The validator's message, or the broken rule's description for a `not` (path rules)."""
    if error.validator == "not" and "description" in error.schema:
        return f"{error.instance!r}: breaks the rule \"{error.schema['description']}\""
    return error.message


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema", choices=sorted(SCHEMAS), help="force a schema instead of guessing")
    ap.add_argument("files", nargs="+", type=pathlib.Path)
    args = ap.parse_args(argv)

    fc = format_checker()
    validators = {
        k: jsonschema.Draft202012Validator(json.loads((HERE / f).read_text()), format_checker=fc)
        for k, f in SCHEMAS.items()
    }
    status = 0
    for path in args.files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"{path}: ERROR cannot read JSON: {e}")
            status = max(status, 2)
            continue
        kind = args.schema or kind_of(doc)
        if kind is None:
            print(f"{path}: ERROR neither a manifest nor a report (use --schema)")
            status = max(status, 2)
            continue
        errors = [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {explain(e)}"
            for e in sorted(validators[kind].iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]
        if not errors and kind == "manifest":
            errors = manifest_extra_checks(doc)
        if errors:
            status = max(status, 1)
            print(f"{path}: INVALID {kind}")
            for e in errors:
                print(f"  {e}")
        else:
            print(f"{path}: valid {kind}")
    return status


if __name__ == "__main__":
    sys.exit(main())

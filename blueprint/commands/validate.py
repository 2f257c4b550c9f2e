"""`blueprint validate SPEC...`: check specs and report every problem with file:line:column.

Errors and warnings of an invalid spec are printed together, in source order. Unlike
``load_spec``, validate also requires the files a spec names (``tokenizer.path``) to exist.

Output: ``ok`` lines on stdout, errors and warnings on stderr; with ``--lock`` or ``--json`` stdout
carries only the lock files or the JSON document (``validate --lock s.yaml > s.lock.yaml``), and
the ``ok`` lines go to stderr.

Exit status: 0 when every spec is valid (warnings allowed), 1 when any spec is invalid (or, with
``--strict``, has warnings), 2 for usage errors (argparse). Imports no torch.
"""

from __future__ import annotations

import argparse
import json
import sys

from blueprint.errors import SpecError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files to check")
    parser.add_argument("--strict", action="store_true",
                        help="treat warnings (e.g. sizes not a multiple of 64) as failures")
    parser.add_argument("--lock", action="store_true",
                        help="print each valid spec's lock file (every default resolved)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print errors only: no warnings, no 'ok' lines")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: per spec, valid or not, its errors and warnings "
                             "(file, line, column, path, message, hint)")


def _issue_json(issue) -> dict:
    return {"file": issue.file, "line": issue.line, "column": issue.column, "path": issue.path,
            "severity": issue.severity, "message": issue.message, "hint": issue.hint}


def run(args: argparse.Namespace) -> int:
    from blueprint.spec.diagnose import sort_issues
    from blueprint.spec.load import load_spec_file
    from blueprint.spec.lock import dump_lock

    failed = 0
    status = sys.stderr if args.lock or args.json else sys.stdout  # stdout: only what was asked for
    report = []
    for path in args.specs:
        try:
            loaded = load_spec_file(path, check_files=True)
        except SpecError as err:
            failed += 1
            report.append({"file": path, "valid": False, "errors": [_issue_json(i) for i in err.issues],
                           "warnings": [_issue_json(w) for w in err.warnings]})
            if args.json:
                continue
            shown = err.issues if args.quiet else sort_issues(err.issues + err.warnings)
            print("\n".join(issue.format() for issue in shown), file=sys.stderr, flush=True)
            n = len(err.issues)
            print(f"{path}: invalid ({n} error{'s' if n != 1 else ''})", file=sys.stderr, flush=True)
            continue
        spec, warnings = loaded.spec, loaded.warnings
        strict_fail = bool(args.strict and warnings)
        failed += strict_fail
        entry = {"file": path, "valid": not strict_fail, "name": spec.name, "errors": [],
                 "warnings": [_issue_json(w) for w in warnings]}
        if args.lock and not strict_fail:
            entry["lock"] = dump_lock(spec)
        report.append(entry)
        if args.json:
            continue
        if warnings and not args.quiet:
            print("\n".join(w.format() for w in warnings), file=sys.stderr, flush=True)
        if strict_fail:
            print(f"{path}: {len(warnings)} warning(s) with --strict", file=sys.stderr, flush=True)
            continue
        if not args.quiet:
            head = "decoder" if spec.is_decoder else f"encoder ({spec.head.kind})"
            note = f", {len(warnings)} warning(s)" if warnings else ""
            print(f"{path}: ok ({spec.name}: {head}, {spec.num_layers} layers, "
                  f"embed_dim {spec.embed_dim}{note})", file=status, flush=True)
        if args.lock:
            print(dump_lock(spec), end="", flush=True)
    if args.json:
        print(json.dumps({"valid": not failed, "specs": report}, indent=2))
    return 1 if failed else 0

"""`blueprint inspect SPEC|BUILD`: what each head attends to and what each layer predicts.

Runs the compiled torch graph (not ONNX) with the analysis attention on one sequence and writes
DIR/inspect.json, DIR/attention.npz, PNG pictures and a self-contained DIR/report.html
(``compiler.inspect``). ``--json`` prints the inspect.json object on stdout too.
"""

from __future__ import annotations

import argparse
import json
import sys

from blueprint.errors import BlueprintError


def add_arguments(parser) -> None:
    parser.add_argument("target", metavar="SPEC|BUILD", help="a spec file or a folder written by blueprint build")
    parser.add_argument("--weights", metavar="PATH",
                        help="weights: a safetensors file, a sharded or Hugging Face folder, or a GGUF file "
                             "(default: the build's, or the spec's seeded random initialisation)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="input text (needs a tokenizer)")
    src.add_argument("--ids", metavar="'1 2 3'", help="input token ids, space separated")
    src.add_argument("--induction", nargs="?", type=int, const=50, metavar="N",
                     help="the induction probe: N random tokens (default 50) repeated twice")
    parser.add_argument("-o", "--output", metavar="DIR", required=True, help="folder to write")
    parser.add_argument("--json", action="store_true", help="also print the inspect.json object on stdout")
    parser.add_argument("--layers", metavar="SEL", help="layers to report, e.g. '0,3,8-11' (default: all)")
    parser.add_argument("--heads", metavar="SEL", help="heads to report in each layer, e.g. '0-3' (default: all)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="logit-lens tokens per position (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the induction probe's tokens (default 0)")
    parser.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json (default: the build's or the spec's)")
    parser.add_argument("--no-pictures", action="store_true", help="write inspect.json and attention.npz only")


def parse_selection(text: str | None, flag: str) -> list[int] | None:
    """'0,3,8-11' -> [0, 3, 8, 9, 10, 11]; None or 'all' -> None (everything)."""
    if text is None or text.strip() == "all":
        return None
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out += range(lo_i, hi_i + 1)
            else:
                out.append(int(part))
        except ValueError:
            raise BlueprintError(f"{flag} takes indices and ranges like '0,3,8-11', got '{text}'") from None
    if any(i < 0 for i in out):
        raise BlueprintError(f"{flag}: indices start at 0, got '{text}'")
    return sorted(set(out))


def _input(args, subject) -> tuple[list[int], str]:
    from compiler.inspect.load import induction_probe

    if args.induction is not None:
        ids = induction_probe(subject.spec, subject.tokenizer, args.induction, seed=args.seed)
        return ids, f"induction probe: {args.induction} random tokens repeated twice (seed {args.seed})"
    if args.text is not None:
        if subject.tokenizer is None:
            raise BlueprintError("--text needs a tokenizer, and this model has none",
                                 hint="pass --tokenizer PATH, or use --ids")
        return subject.tokenizer.encode(args.text), "text"
    try:
        return [int(t) for t in args.ids.replace(",", " ").split()], "ids"
    except ValueError:
        raise BlueprintError(f"--ids takes integers separated by spaces, got '{args.ids}'") from None


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise BlueprintError(f"--top-k must be at least 1, got {args.top_k}")
    layers = parse_selection(args.layers, "--layers")
    heads = parse_selection(args.heads, "--heads")

    from blueprint.commands.explain import describe
    from compiler.inspect import inspect_ids, load_subject
    from compiler.inspect.write import to_json, write_inspection

    subject = load_subject(args.target, weights=args.weights, tokenizer=args.tokenizer)
    ids, source = _input(args, subject)
    tok = subject.tokenizer
    token_text = tok.token_text if tok is not None else str
    result = inspect_ids(subject.gm, subject.spec, ids, tokens=[token_text(t) for t in ids],
                         layers=layers, heads=heads, top_k=args.top_k)
    notes = []
    if subject.weights.startswith("random"):
        notes.append("random weights: the scores describe an untrained model (pass --weights, or inspect a build)")
    obj = to_json(result, spec=subject.spec, weights=subject.weights, source=source, token_text=token_text,
                  notes=notes)
    summary = [f"model: {subject.spec.name}; weights: {subject.weights}",
               f"input: {source}; {len(ids)} tokens",
               f"layers: {_ranges(result.layers)}; heads: {_ranges(result.heads)}"]
    files = write_inspection(result, obj, args.output, spec=subject.spec,
                             explain=describe(subject.spec, 1, len(ids)), summary=summary,
                             token_text=token_text, pictures=not args.no_pictures)
    if args.json:
        json.dump(obj, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    for note in obj["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.output} ({', '.join(files[:4])}{', ...' if len(files) > 4 else ''})", file=sys.stderr)
    return 0


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start = [], None
    for k, v in enumerate(values):
        if start is None:
            start = v
        if k + 1 == len(values) or values[k + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)

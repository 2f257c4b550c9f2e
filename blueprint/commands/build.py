"""`blueprint build SPEC`: compile a spec, export it to ONNX, verify it, write build/<name>/."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("spec", help="the spec YAML file")
    parser.add_argument("-o", "--output", metavar="DIR", help="output directory (default: build/<spec name>)")
    parser.add_argument("--weights", metavar="PATH",
                        help="weights to load: a blueprint safetensors file, a sharded folder or a Hugging Face folder "
                             "(default: the spec's seeded initialisation)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 23)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None,
                        help="weights and activations dtype (default: the spec's dtype); bf16 is refused: "
                             "onnxruntime's CPU provider cannot run it")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-torch check (the build is then untrusted)")
    parser.add_argument("--export", choices=["staged", "whole"], default="staged",
                        help="staged: export each distinct layer structure once and stamp it per layer (fast); "
                             "whole: the whole model through torch.onnx.export in one piece")
    parser.add_argument("--portable", action="store_true",
                        help="plain ONNX only (no onnxruntime contrib ops), for runtimes other than onnxruntime; "
                             "by default decoders get the fused export (GroupQueryAttention etc.) where it applies")
    parser.add_argument("--window-cache", action="store_true",
                        help="sliding-window layers keep a cache of about their window (the fused export's "
                             "GroupQueryAttention evicts in place) instead of the whole past: less memory and "
                             "faster decode past the window; present.* of those layers then holds the resident "
                             "rows only (docs/architecture.md, Window cache)")
    parser.add_argument("--quantize", choices=["int4", "int8"],
                        help="weight-only block-wise quantization of the MatMul weights (onnxruntime MatMulNBits); "
                             "the build reports top-1 agreement with fp32 on real text and fails below --min-agreement")
    parser.add_argument("--block-size", type=int, default=None, help="weights per quantization scale (default 32)")
    parser.add_argument("--accuracy-level", type=int, default=None,
                        help="MatMulNBits accuracy level: 4 = int8 activations (default), 0 = onnxruntime decides")
    parser.add_argument("--quant-method", choices=["rtn", "minmax", "minmax-exact", "hqq"], default=None,
                        help="minmax (int4 default): per-block min-max with float offsets (llama.cpp's Q4_1 scheme), "
                             "the offsets folded into the integer MatMulNBits; minmax-exact: the offsets as an exact "
                             "fp32 correction (slower); rtn (int8 default): round-to-nearest; "
                             "hqq: fitted scale and zero point, 4 bits only, much slower to run (float zero points)")
    parser.add_argument("--quant-scheme", choices=["sym", "asym"], default=None,
                        help="rtn only: sym = signed levels, no zero point (default); asym = integer zero point")
    parser.add_argument("--keep-int8", metavar="SELECTORS", default=None,
                        help="with --quantize int4: MatMuls kept at 8 bits (default: none), "
                             "comma-separated: head, first, last, "
                             "layer:N, a projection name (down_proj ...), worst:F (the fraction F with the largest "
                             "4-bit weight error)")
    parser.add_argument("--head-rescore", type=int, default=None, metavar="K",
                        help="rescore the quantized LM head's K best candidates in full precision (default 8; "
                             "0 = off): the argmax is the fp32 head's whenever it is among them")
    parser.add_argument("--keep-fp32", metavar="SELECTORS", default=None,
                        help="MatMuls left unquantized (same selectors as --keep-int8)")
    parser.add_argument("--keep-checkpoint", action="store_const", const=True, default=None,
                        help="also keep the fp32 weights.safetensors in a quantized build (what export-hf, inspect "
                             "and build --weights read); by default the folder holds only what the quantized model runs")
    parser.add_argument("--min-agreement", type=float, default=None,
                        help="least teacher-forced top-1 agreement with fp32 a quantized build must reach (default 0.95)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


# the options that only mean something with --quantize (default None: "not given")
_QUANTIZE_ONLY = ("block_size", "accuracy_level", "quant_method", "quant_scheme", "keep_int8", "keep_fp32",
                  "head_rescore", "min_agreement", "keep_checkpoint")


def _quantize_options(args):
    """QuantizeOptions from the command line, or None without --quantize (where a quantization
    option is an error, not silently ignored)."""
    from blueprint.errors import BlueprintError
    from compiler.export.quantize import QuantizeOptions

    given = ["--" + name.replace("_", "-") for name in _QUANTIZE_ONLY if getattr(args, name) is not None]
    if args.quantize is None:
        if given:
            raise BlueprintError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --quantize int4|int8",
                                 hint="add --quantize int4 (or int8), or remove " + ", ".join(given))
        return None
    optional = {"block_size": args.block_size, "accuracy_level": args.accuracy_level,
                "min_agreement": args.min_agreement, "keep_checkpoint": args.keep_checkpoint}
    return QuantizeOptions(
        args.quantize, method=args.quant_method, symmetric=args.quant_scheme != "asym",
        keep_int8=None if args.keep_int8 is None else _selectors(args.keep_int8),
        keep_fp32=_selectors(args.keep_fp32 or ""), head_rescore=args.head_rescore,
        **{name: value for name, value in optional.items() if value is not None})


def _selectors(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip() and part.strip() != "none")


def _terminated(signum, frame):
    # SIGTERM (a CI cancel, `timeout`, `kill`) unwinds like Ctrl-C, so the build's cleanup runs
    # and no temporary directory is left beside the target.
    raise KeyboardInterrupt


def run(args) -> int:
    import signal
    import sys
    import threading

    from compiler.export.build import Progress, build
    from compiler.export.onnx_export import DEFAULT_OPSET

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        result = build(
            args.spec,
            args.output,
            weights=args.weights,
            opset=DEFAULT_OPSET if args.opset is None else args.opset,
            dtype=args.dtype,
            verify=not args.no_verify,
            staged=args.export == "staged",
            portable=args.portable,
            window_cache=args.window_cache,
            quantize=_quantize_options(args),
            progress=Progress(sys.stderr, enabled=not args.quiet),
        )
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    files = ", ".join(result.manifest["files"])
    print(f"built {result.directory} ({files})")
    return 0

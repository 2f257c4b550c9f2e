"""`blueprint build SPEC`: compile a spec, export it to ONNX, verify it, write build/<name>/."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("spec", help="the spec YAML file")
    parser.add_argument("-o", "--output", metavar="DIR", help="output directory (default: build/<spec name>)")
    parser.add_argument("--weights", metavar="PATH",
                        help="weights to load: a blueprint safetensors file, a sharded folder or a Hugging Face folder "
                             "(default: the spec's seeded initialisation)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 23)")
    parser.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32", help="weights and activations dtype")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-torch check (the build is then untrusted)")
    parser.add_argument("--export", choices=["staged", "whole"], default="staged",
                        help="staged: export each distinct layer structure once and stamp it per layer (fast); "
                             "whole: the whole model through torch.onnx.export in one piece")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


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
            progress=Progress(sys.stderr, enabled=not args.quiet),
        )
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    files = ", ".join(result.manifest["files"])
    print(f"built {result.directory} ({files})")
    return 0

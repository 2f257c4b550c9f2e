"""``blueprint build``: spec -> verified build directory, written atomically.

Stages: validate -> compile -> export -> verify -> write. Everything is written into a temporary
directory beside the target; the target is replaced only after verification passed and the
manifest is written, so a failed or interrupted build leaves any previous build untouched and
no half-written directory behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blueprint
from blueprint.errors import BlueprintError, first_line
from blueprint.window_cache import MANIFEST_KEY as WINDOW_KEY, to_manifest
from compiler.export import onnx_export, verify as verify_mod
from compiler.export.fuse.window import bounded_layers
from compiler.export.io import symbolic_dims
from compiler.export.progress import STAGES, Progress  # noqa: F401 - re-exported: callers import them from here
from compiler.export.target import check_target, normal_permissions, replace, sweep_leftovers

@dataclass(frozen=True)
class BuildResult:
    directory: Path
    manifest: dict
    report: verify_mod.VerifyReport | None


def default_compile(spec, *, kv_cache: bool, initialise: bool = True):
    """The real compiler: compile_spec, as the inference graph (no checkpointing: a memory
    budget policy is a training-time choice that depends on the training batch).
    ``initialise=False`` when ``--weights`` will overwrite every parameter (``load_into``)."""
    try:
        from compiler import compile_spec
        from compiler.graph_meta import CHECKPOINTED
    except ImportError as err:
        raise BlueprintError(f"the compiler is not available in this installation ({err})",
                             hint="reinstall blueprint: pip install -e .") from None

    gm = compile_spec(spec, kv_cache=kv_cache, checkpointing=False, initialise=initialise)
    assert not any(n.meta.get(CHECKPOINTED) for n in gm.graph.nodes), "a build graph is never checkpointed"
    return gm


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"blueprint": blueprint.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def _signature(model) -> dict:
    """Input/output names, element types and shapes (dynamic axes by name) of the ONNX graph."""

    def describe(value) -> dict:
        dims = [d if isinstance(d, int) else d.value for d in value.shape] if value.shape is not None else None
        return {"name": value.name, "dtype": str(value.dtype.name).lower() if value.dtype else None, "shape": dims}

    return {"inputs": [describe(v) for v in model.graph.inputs], "outputs": [describe(v) for v in model.graph.outputs]}


def load_into(module, spec, path: Path) -> None:
    """Load any ``--weights`` source (``compiler.weights.load_weights``) into ``module``."""
    from compiler.weights import load_weights

    state = load_weights(path, spec)
    missing, unexpected = module.load_state_dict(state, strict=False)
    # Tied weights are stored once (under embed.tokens.weight); the duplicate key of a module
    # that shares that parameter is legitimately missing.
    params = dict(module.named_parameters(remove_duplicate=False))
    tied = {k for k in missing if k in params and params[k] is params.get("embed.tokens.weight")}
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise BlueprintError(
            f"weights {path} do not fit the compiled model: missing {missing[:5]}, unexpected {list(unexpected)[:5]}"
        )


def _write_model(state: dict, model, tmp: Path, metadata: dict, external_threshold: int) -> list[str]:
    """weights.safetensors, then model.onnx referencing its bytes instead of holding a copy;
    returns the files save_model wrote."""
    from compiler.weights import save_weights

    save_weights(state, tmp / "weights.safetensors")
    return onnx_export.save_model(model, tmp, metadata=metadata, external_threshold=external_threshold,
                                  weights_file=tmp / "weights.safetensors")


def build_lock(spec) -> str:
    """The spec.lock.yaml a build stores (and hashes): the tokenizer it copies is its own
    ``tokenizer.json``, so the lock validates inside the build folder and no path of the
    machine that built it reaches the ONNX metadata."""
    if spec.tokenizer is not None and spec.tokenizer.path:
        spec = spec.model_copy(update={"tokenizer": spec.tokenizer.model_copy(update={"path": "tokenizer.json"})})
    return blueprint.dump_lock(spec)


# --dtype -> spec dtype. The spec's dtype is the build's unless --dtype overrides it.
BUILD_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def build_dtype(spec, flag: str | None):
    """(spec, --dtype name) of a build: the spec's own dtype, or the one ``--dtype`` names
    written into the spec, so the compiled graph, the weights check (an fp16 build refuses
    weights beyond 65504), the lock file and the manifest all say the same.

    Raises:
        BlueprintError: bfloat16, which onnxruntime's CPU provider cannot run.
    """
    if flag is not None and BUILD_DTYPES[flag] != spec.dtype:
        spec = spec.model_copy(update={"dtype": BUILD_DTYPES[flag]})
    if spec.dtype == "bfloat16":
        from_flag = "--dtype bf16" if flag else "the spec's dtype: bfloat16"
        raise BlueprintError(f"cannot build {from_flag}: onnxruntime's CPU provider has no bfloat16 kernels "
                             "for MatMul and Add, so the model could not run or be verified",
                             hint="build with --dtype fp32 or --dtype fp16 (the spec's bfloat16 still "
                                  "applies to compile_spec, for training)")
    return spec, {v: k for k, v in BUILD_DTYPES.items()}[spec.dtype]


def _tokenizer_source(spec, spec_path: Path) -> Path | None:
    """The spec's tokenizer.json (relative to the spec file), checked before any work is done."""
    if spec.tokenizer is None or not spec.tokenizer.path:
        return None
    source = (Path(spec_path).parent / spec.tokenizer.path).resolve()
    if not source.is_file():
        raise BlueprintError(
            f"{spec_path}: tokenizer.path '{spec.tokenizer.path}' not found (looked for {source})",
            hint="the path is relative to the spec file; fix it or remove tokenizer.path",
        )
    return source


def _weights_tokenizer(weights, spec_tokenizer: Path | None) -> tuple[Path | None, str | None]:
    """A weights folder's own tokenizer.json (``blueprint train`` writes one into ``final/``)
    goes with the build: the weights were trained with it. It wins over the spec's when the
    two differ, with a note; returns (tokenizer, note)."""
    own = Path(weights) / "tokenizer.json" if weights is not None and Path(weights).is_dir() else None
    if own is None or not own.is_file():
        return spec_tokenizer, None
    if spec_tokenizer is not None and sha256_file(spec_tokenizer) != sha256_file(own):
        return own, (f"note: using {own} (the weights' own tokenizer), not the spec's tokenizer.path "
                     f"{spec_tokenizer}")
    return own, None


def build(
    spec_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    opset: int = onnx_export.DEFAULT_OPSET,
    dtype: str | None = None,
    verify: bool = True,
    progress: Progress | None = None,
    external_threshold: int | None = None,
    staged: bool = True,
    quantize=None,
    portable: bool = False,
    window_cache: bool = False,
) -> BuildResult:
    """Build ``spec_path`` into ``out_dir`` (default ``build/<spec name>``).

    Decoders the fused export covers get onnxruntime contrib ops (``compiler.export.fuse``);
    ``portable`` (or ``staged=False``) keeps the plain ONNX export for other runtimes.
    ``window_cache``: sliding-window layers keep a window-sized cache (``blueprint.window_cache``).

    Raises:
        BlueprintError: invalid spec, weights that do not fit, export or verification failure.
    """
    progress = progress or Progress(enabled=False)
    if dtype is not None and dtype not in BUILD_DTYPES:
        raise BlueprintError(f"--dtype must be one of {', '.join(BUILD_DTYPES)}, got '{dtype}'")
    onnx_export.check_opset(opset)
    if quantize is not None:
        quantize.check()
        if dtype not in (None, "fp32"):  # None: the spec's dtype, checked once the spec is loaded
            raise BlueprintError(f"--quantize {quantize.kind} starts from fp32 weights; drop --dtype {dtype}")
    try:
        return _build(Path(spec_path), out_dir, weights=weights, opset=opset, dtype=dtype, verify=verify,
                      progress=progress, staged=staged, quantize=quantize, portable=portable,
                      window_cache=window_cache,
                      external_threshold=onnx_export.EXTERNAL_DATA_THRESHOLD if external_threshold is None
                      else external_threshold)
    except BaseException:
        progress.fail()
        raise


def _build(spec_path: Path, out_dir, *, weights, opset, dtype, verify, progress, external_threshold,
           staged, quantize, portable, window_cache) -> BuildResult:
    import torch

    progress.begin("validate", str(spec_path))
    spec, warnings = blueprint.load_spec_with_warnings(spec_path)
    spec, dtype = build_dtype(spec, dtype)
    if quantize is not None and dtype != "fp32":
        raise BlueprintError(f"--quantize {quantize.kind} starts from fp32 weights; this build is {dtype} "
                             "(spec dtype or --dtype)", hint="build with --dtype fp32")
    if weights is not None and not Path(weights).exists():  # before minutes of compiling, not after
        raise BlueprintError(f"weights path '{weights}' does not exist")
    from compiler.budget import build_bytes, check_fits, verify_bytes

    check_fits(spec, need=build_bytes(spec), doing=f"building it in {dtype}")  # before allocating
    if verify:
        check_fits(spec, need=verify_bytes(spec, spec.is_decoder), doing="verifying it (a sequence longer than "
                   "twice its widest window)", hint="use a smaller attention.window, or --no-verify "
                   "(the build is then untrusted)")
    target = Path(out_dir) if out_dir is not None else Path("build") / spec.name
    check_target(target)
    tokenizer, note = _weights_tokenizer(weights, _tokenizer_source(spec, spec_path))
    lock = build_lock(spec)  # the build is reproducible from this text alone
    progress.end()
    for warning in warnings:
        progress.info(warning.format())
    if note:
        progress.info(note)

    kv_cache = spec.is_decoder
    fused = _choose_fused(spec, kv_cache=kv_cache, dtype=dtype, wanted=staged and not portable, progress=progress)
    bounded = bounded_layers(spec, wanted=window_cache, fused=fused, portable=portable, dtype=dtype)
    progress.begin("compile", f"{spec.name} (kv_cache={kv_cache})")
    torch.manual_seed(spec.init.seed)
    module = default_compile(spec, kv_cache=kv_cache, initialise=weights is None)
    if weights is not None:
        load_into(module, spec, Path(weights))
    module = module.eval()
    progress.end()

    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="build-writer")
    try:
        progress.begin("export", f"opset {opset}, {dtype}" + (", fused for onnxruntime" if fused else ""))
        try:
            whole = {} if staged else {"staged": False}  # staged is export_model's default
            model = onnx_export.export_model(module, spec, kv_cache=kv_cache, opset=opset, dtype=dtype,
                                             fused=fused, bounded=frozenset(bounded), **whole)
        except Exception as err:  # the exporter raises many types; the user needs the summary
            raise _export_error(spec, err) from err
        onnx_export.check_exported_opset(model, opset)
        vers = versions()
        spec_sha = hashlib.sha256(lock.encode()).hexdigest()
        metadata = {"blueprint.spec": lock, "blueprint.spec_sha256": spec_sha, "blueprint.dtype": dtype,
                    "blueprint.kv_cache": str(kv_cache).lower(), **{f"{k}.version": v for k, v in vers.items()}}
        if bounded:
            metadata["blueprint.window_cache"] = json.dumps(to_manifest(bounded))
        # The files are written on a thread while verification's torch work starts: writing
        # 500 MB is the kernel's work, not Python's. The weights are taken now, before
        # verification widens the module to float64.
        written = writer.submit(_write_model, module.state_dict(), model, tmp, metadata, external_threshold)
        checkpoint = quantize is None or quantize.keep_checkpoint  # weights.safetensors stays in the folder
        hashes = {"weights.safetensors": writer.submit(sha256_file, tmp / "weights.safetensors")} if checkpoint else {}
        if not verify:
            written.result()
        progress.end()

        report = None
        if verify:
            progress.begin("verify", f"onnxruntime and torch {dtype} vs float64")
            report = verify_mod.verify(module, spec, tmp / "model.onnx", kv_cache=kv_cache, dtype=dtype,
                                       written=written, bounded=bounded)
            progress.end("passed" if report.ok else "FAILED")
            progress.info(report.format())
            verify_mod.check(report)
        files = written.result()

        quantization = None
        if quantize is not None:  # after fp32 verification; measured against the verified fp32 model
            from compiler.export.quantize import quantize_build

            if fused:  # packed q/k/v and gate/up weights as initializers the quantizer recognises
                from compiler.export.fuse import fold_packed_weights

                fold_packed_weights(model)

            files, quantization = quantize_build(model, tmp, spec, quantize, tokenizer=tokenizer,
                                                 metadata={**metadata, "blueprint.quantize": quantize.kind},
                                                 progress=progress,
                                                 bounded=bounded)

        progress.begin("write", str(target))
        (tmp / "spec.lock.yaml").write_text(lock)
        files += ["spec.lock.yaml"] + (["weights.safetensors"] if quantize is None else [])  # quantize_build lists its own
        files += _write_genai_config(spec, tmp, fused, bounded) if kv_cache else []
        if tokenizer is not None:
            shutil.copyfile(tokenizer, tmp / "tokenizer.json")
            files.append("tokenizer.json")
        manifest = _manifest(spec, model, tmp, files, spec_sha=spec_sha, versions=vers, opset=opset, dtype=dtype,
                             kv_cache=kv_cache, report=report, bounded=bounded,
                             hashes={k: f.result() for k, f in hashes.items()})
        if quantization is not None:
            manifest["quantization"] = quantization
        manifest["export"] = "fused" if fused else "plain"
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        normal_permissions(tmp)
        replace(tmp, target)
        progress.end()
    except BaseException:
        writer.shutdown(wait=True, cancel_futures=True)  # nothing writes into tmp any more
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        writer.shutdown(wait=True)
    return BuildResult(target, manifest, report)


def _choose_fused(spec, *, kv_cache: bool, dtype: str, wanted: bool, progress: Progress) -> bool:
    """Whether this build gets the fused export; a spec it does not cover says why and falls back."""
    if not wanted:
        return False
    from compiler.export.fuse import why_not

    reason = why_not(spec, kv_cache=kv_cache, dtype=dtype)
    if reason is not None and spec.is_decoder:  # encoders are never fused: no note needed
        progress.info(f"note: plain ONNX export, not the fused one: {reason}")
    return reason is None


def _write_genai_config(spec, tmp: Path, fused: bool, bounded: dict) -> list[str]:
    """onnxruntime-genai's config beside the model (compiler/export/genai_config.py)."""
    from compiler.export.genai_config import FILE, genai_config

    config = genai_config(spec, shared_cache=fused, bounded=bounded)
    if config is None:
        return []
    (tmp / FILE).write_text(json.dumps(config, indent=2) + "\n")
    return [FILE]


def _manifest(spec, model, tmp: Path, files: list[str], *, spec_sha, versions, opset, dtype, kv_cache, report,
              bounded: dict, hashes: dict[str, str]) -> dict:
    """What the build is: spec hash, tool versions, opset, the I/O signature, file hashes
    (``hashes``: those already computed)."""
    return {
        "name": spec.name,
        "kind": "decoder" if spec.is_decoder else "encoder",
        "spec_sha256": spec_sha,
        "versions": versions,
        "opset": opset,
        "dtype": dtype,
        "kv_cache": kv_cache,
        "dynamic_axes": {n: symbolic_dims(n, frozenset(bounded)) for n in (v.name for v in model.graph.inputs)},
        "signature": _signature(model),
        "verification": None if report is None else report.as_dict(),
        WINDOW_KEY: to_manifest(bounded) if bounded else None,
        "files": {f: hashes[f] if f in hashes else sha256_file(tmp / f) for f in sorted(files)},
    }


def _export_error(spec, err: Exception) -> BlueprintError:
    """The exporter's summary plus its root cause, as one user-facing error. A Ctrl-C that the
    exporter wrapped into its own error type (seen when it lands inside a lazy import) is
    re-raised as the interrupt it was."""
    chain, seen = [], set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, KeyboardInterrupt):
            raise KeyboardInterrupt from err
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    message = f"ONNX export of '{spec.name}' failed: {first_line(err)}"
    root = first_line(chain[-1])
    if len(chain) > 1 and root not in message:
        message += f"\n    cause: {type(chain[-1]).__name__}: {root}"
    return BlueprintError(message, hint="try another --opset, or report the spec that fails")

"""Everything before the first step: flags, spec, processes, tokenizer, token files, resume.

Checks that need only the flags and the spec run first; then the data is read and the
tokenizer trained or loaded and checked against the spec; tokenization (rank 0 only, cached in
OUT/data) comes last, so every user error surfaces before the expensive work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from blueprint.errors import BlueprintError
from blueprint.train import data, options, parallel, state
from blueprint.train.options import Options
from blueprint.train.parallel import World


@dataclass
class Run:
    spec: object
    spec_path: Path
    opts: Options
    world: World
    out: Path
    tokenizer: Path
    train: data.Sequences
    eval: data.Sequences | None
    policy: object
    init_weights: Path | None
    resume: Path | None
    meta: dict  # what a checkpoint records to be resumed


def prepare(args) -> Run:
    import blueprint

    spec = blueprint.load_spec(args.spec)
    opts = Options(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len or spec.max_seq_len,
                   grad_accum=args.grad_accum, lr=args.lr, warmup=args.warmup, schedule=args.schedule,
                   weight_decay=args.weight_decay, clip=args.clip, seed=args.seed, save_every=args.save_every,
                   eval_every=args.eval_every, parallel=args.parallel)
    world = parallel.world_from_env(opts.parallel)
    options.check(spec, opts, world=world.size, tokenizer=args.tokenizer, train_vocab=args.train_tokenizer,
                  resuming=args.resume is not None)
    policy = options.parse_policy(args.checkpointing) if args.checkpointing else spec.training.checkpointing
    if getattr(policy, "memory_budget", None) is not None:  # fail now, not after tokenizing
        from compiler.policy import resolve_policy

        policy = resolve_policy(spec, policy, batch=opts.batch_size // (world.size * opts.grad_accum),
                                seq_len=opts.seq_len)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BlueprintError(f"--out {out}: exists and is not a folder")
    resume = _resume_folder(args, out)
    if resume is None and (out / "metrics.jsonl").is_file():
        raise BlueprintError(f"--out {out} already holds a training run",
                             hint="pass --resume to continue it, or choose another --out")
    init_weights = Path(args.init_weights) if args.init_weights else None
    if init_weights is not None and not init_weights.exists():
        raise BlueprintError(f"--init-weights {init_weights}: no such file or folder")
    if init_weights is not None and resume is not None:
        raise BlueprintError("--init-weights and --resume both given",
                             hint="a resumed run takes its weights from the checkpoint")
    if args.eval_data and not args.eval_every:
        raise BlueprintError("--eval-data without --eval-every", hint="pass --eval-every N (steps)")

    files = data.expand_paths(args.data)
    eval_files = data.expand_paths(args.eval_data, "--eval-data") if args.eval_data else []
    resume_meta = state.read_meta(resume) if resume is not None else None
    parallel.init(world, opts.parallel)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = parallel.on_main(world, _tokenizer, args, spec, out, files, resume)
    tok = data.load_tokenizer(tokenizer)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    options.check_vocab(spec, vocab, str(tokenizer))
    eos = data.eos_id(tok, spec)
    if eos >= vocab:
        raise BlueprintError(f"the end-of-text id {eos} is not in the tokenizer ({vocab} ids)")

    tok_sha = data.sha256_file(tokenizer)
    fingerprint = data.fingerprint(files)
    meta = {"spec_identity": state.spec_identity(spec), "tokenizer_sha256": tok_sha,
            "data_fingerprint": fingerprint, "options": opts.resume_view()}
    if resume_meta is not None:
        state.check_compatible(resume, resume_meta, meta)

    train = parallel.on_main(world, _tokens, files, tokenizer, eos, out, tok_sha, "--data")
    train_seq = data.Sequences(data.open_tokens(train), opts.seq_len)
    if train_seq.count < 1:
        raise BlueprintError(f"--data holds {len(train_seq.tokens)} tokens, fewer than one sequence of "
                             f"--seq-len {opts.seq_len} + 1", hint="add data or lower --seq-len")
    eval_seq = None
    if eval_files:
        ev = parallel.on_main(world, _tokens, eval_files, tokenizer, eos, out, tok_sha, "--eval-data")
        eval_seq = data.Sequences(data.open_tokens(ev), opts.seq_len)
        if eval_seq.count < 1:
            raise BlueprintError(f"--eval-data holds fewer than {opts.seq_len + 1} tokens")
    return Run(spec=spec, spec_path=Path(args.spec), opts=opts, world=world, out=out, tokenizer=tokenizer,
               train=train_seq, eval=eval_seq, policy=policy, init_weights=init_weights, resume=resume, meta=meta)


def _resume_folder(args, out: Path) -> Path | None:
    if args.resume is None:
        return None
    folder = state.latest(out) if args.resume == "latest" else Path(args.resume)
    state.read_meta(folder)  # a clear error for a folder that is not a checkpoint
    return folder


def _tokenizer(args, spec, out: Path, files, resume: Path | None) -> Path:
    """The run's tokenizer.json in OUT: copied from --tokenizer / the spec / the checkpoint,
    or trained on --data (``--train-tokenizer``)."""
    import shutil

    target = out / "tokenizer.json"
    if resume is not None:
        source = resume / "tokenizer.json"
    elif args.train_tokenizer:
        docs, _ = data.read_documents(files)
        if not docs:
            raise BlueprintError("--data has no text to train a tokenizer on (every file is empty or binary)")
        data.train_tokenizer(docs, args.train_tokenizer, target)
        return target
    elif args.tokenizer:
        source = Path(args.tokenizer)
    else:
        source = (Path(args.spec).parent / spec.tokenizer.path)
    if not source.is_file():
        raise BlueprintError(f"tokenizer {source}: no such file")
    data.load_tokenizer(source)  # malformed files are reported under their own name
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return target


def _tokens(files, tokenizer: Path, eos: int, out: Path, tok_sha: str, flag: str) -> Path:
    key = data.cache_key(tok_sha, data.fingerprint(files), eos)
    cached = list((out / "data").glob(f"tokens-{key[:16]}.*")) if (out / "data").is_dir() else []
    if cached and not cached[0].name.count(".tmp"):
        return cached[0]
    docs, skipped = data.read_documents(files)
    if not docs:
        raise BlueprintError(f"{flag}: no text in {len(files)} file(s) (every file is empty or binary)")
    if skipped:
        print(f"note: {flag}: skipped {skipped} binary or non-UTF-8 file(s)", flush=True)
    return data.token_file(docs, data.load_tokenizer(tokenizer), eos, out / "data", key)


def describe(run: Run) -> str:
    o = run.opts
    return json.dumps({"train_tokens": int(len(run.train.tokens)), "train_sequences": run.train.count,
                       "eval_sequences": run.eval.count if run.eval else 0, "processes": run.world.size,
                       "parallel": o.parallel})

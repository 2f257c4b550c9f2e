"""The optimisation: AdamW (decay on matrices only), linear warm-up then cosine or constant
learning rate, gradient clipping, accumulation, evaluation, checkpoints and ``final/``.

The learning rate is a pure function of the step, the batch a pure function of the seed and
the step, and the RNG is saved with the weights, so a run resumed from ``checkpoint-k``
computes exactly the losses the uninterrupted run computed after step k.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from blueprint.train import data, parallel, report, state
from blueprint.train.setup import Run

MIN_LR_RATIO = 0.1  # cosine decays to 10% of --lr


def lr_at(step: int, opts) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    if opts.schedule == "constant":
        return opts.lr
    progress = (step - opts.warmup) / max(1, opts.steps - opts.warmup)
    return opts.lr * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def build_model(run: Run) -> torch.nn.Module:
    """The compiled GraphModule: seeded init or ``--init-weights``, the checkpoint policy for
    this process's micro-batch, then the parallel wrapper."""
    from compiler import compile_spec
    from compiler.export.build import load_into
    from compiler.passes import apply_checkpointing

    torch.manual_seed(run.spec.init.seed)
    gm = compile_spec(run.spec, checkpointing=False, device=run.world.device)
    if run.init_weights is not None:
        load_into(gm, run.spec, run.init_weights)
    if run.policy != "none":
        gm = apply_checkpointing(gm, run.policy).graph_module
    return parallel.wrap(gm, run.opts.parallel)


def make_optimizer(model: torch.nn.Module, opts) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": opts.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=opts.lr, betas=(0.9, 0.95), eps=1e-8)


def _feeds(spec, ids: torch.Tensor) -> list[torch.Tensor]:
    """The I/O contract's inputs (docs/architecture.md, Contracts 8) for packed, unpadded sequences: ids, an all-ones mask, positions."""
    feeds = [ids, torch.ones_like(ids)]
    if spec.positional.kind != "none":
        feeds.append(torch.arange(ids.shape[1], device=ids.device).expand_as(ids))  # [b, s]
    return feeds


def _loss(model, spec, ids: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    logits = model(*_feeds(spec, ids))["logits"]  # [b, s, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction=reduction)


def evaluate(model, run: Run) -> float:
    """Mean next-token loss over every held-out sequence (split across processes)."""
    seqs, world, per = run.eval, run.world, max(1, run.opts.batch_size // run.world.size)
    mine = list(range(world.rank, seqs.count, world.size))
    loss_sum = 0.0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(mine), per):
            ids, targets = seqs.get(mine[start:start + per])
            loss_sum += float(_loss(model, run.spec, ids.to(world.device), targets.to(world.device), "sum"))
    model.train()
    loss_sum, tokens = parallel.total([loss_sum, float(len(mine) * seqs.seq_len)], world)
    return loss_sum / tokens


def train(run: Run, *, quiet: bool = False) -> Path:
    """Run the optimisation; returns OUT/final."""
    opts, world, spec = run.opts, run.world, run.spec
    model = build_model(run)
    optimizer = make_optimizer(model, opts)
    start = 0
    if run.resume is not None:
        start = state.load(run.resume, model=model, optimizer=optimizer, world=world, seed=opts.seed)
    else:
        torch.manual_seed(opts.seed + world.rank)
    order = data.Order(run.train.count, opts.seed)
    metrics = report.Metrics(run.out / "metrics.jsonl", start if run.resume else None) if world.main else None
    bar = report.ProgressBar(opts.steps, start, enabled=world.main and not quiet)
    tokens_per_step = opts.batch_size * opts.seq_len
    model.train()
    try:
        for step in range(start, opts.steps):
            t0 = time.perf_counter()
            lr = lr_at(step, opts)
            for group in optimizer.param_groups:
                group["lr"] = lr
            micro = data.step_indices(order, step, opts.batch_size, world.rank, world.size, opts.grad_accum)
            loss_value = 0.0
            for m, indices in enumerate(micro):
                ids, targets = run.train.get(indices)
                with parallel.gradient_sync(model, opts.parallel, sync=m == len(micro) - 1):
                    loss = _loss(model, spec, ids.to(world.device), targets.to(world.device)) / len(micro)
                    loss.backward()
                loss_value += float(loss.detach())
            if opts.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = parallel.mean(loss_value, world)
            done = step + 1
            record = {"step": done, "loss": loss_value, "lr": lr,
                      "tokens_per_s": tokens_per_step / (time.perf_counter() - t0)}
            note = ""
            if run.eval is not None and opts.eval_every and (done % opts.eval_every == 0 or done == opts.steps):
                record["eval_loss"] = evaluate(model, run)
                record["eval_perplexity"] = report.perplexity(record["eval_loss"])
                note = f" | eval {record['eval_loss']:.4f}"
            if metrics is not None:
                metrics.write(record)
            bar.update(done, loss_value, record["tokens_per_s"], note)
            if opts.save_every and done % opts.save_every == 0:
                state.save(run.out / f"checkpoint-{done}", model=model, optimizer=optimizer, spec=spec,
                           world=world, meta={**run.meta, "step": done}, tokenizer=run.tokenizer)
        final = write_final(run, model)
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    if world.main:
        report.plot(run.out / "metrics.jsonl", run.out / "loss.png", f"{spec.name}: {opts.steps} steps")
    return final


def write_final(run: Run, model) -> Path:
    """OUT/final: model.safetensors (canonical names) and tokenizer.json, which
    ``blueprint build SPEC --weights OUT/final`` takes as is (collective)."""
    from compiler.weights import save_weights

    full = state.full_state(model, run.spec)
    final = run.out / "final"
    if run.world.main:
        tmp = run.out / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(full, tmp / "model.safetensors")
        shutil.copyfile(run.tokenizer, tmp / "tokenizer.json")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    parallel.barrier(run.world)
    return final

"""Checkpoints: everything a run needs to continue exactly, written through
torch.distributed.checkpoint (sharded under FSDP, one file per process otherwise).

``checkpoint-{step}/`` holds ``dcp/`` (model and optimizer state; DCP re-shards on load, so a
run may resume on another number of processes), ``model.safetensors`` (the full model under
blueprint's canonical names, which ``blueprint build --weights`` reads), ``tokenizer.json``,
``rng-{rank}.pt`` (each process's torch RNG state) and ``state.json`` (the step, which fixes
the data position and the schedule, plus what must match to resume: the spec's architecture,
the tokenizer, the data and the flags). A checkpoint is written beside its final name and
renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from blueprint.errors import BlueprintError
from blueprint.train.parallel import World, barrier

STATE = "state.json"


def spec_identity(spec) -> str:
    """The architecture's identity: the lock text without the training section (the
    checkpointing policy changes no weight)."""
    import blueprint
    from blueprint.spec.sections import TrainingSpec

    return hashlib.sha256(blueprint.dump_lock(spec.model_copy(update={"training": TrainingSpec()})).encode()).hexdigest()


def full_state(model: torch.nn.Module, spec) -> dict[str, torch.Tensor]:
    """The whole model on CPU under canonical names (gathered from every process under FSDP;
    only rank 0 receives it). Tied weights appear once, under the spec's own names."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from compiler.naming import parameter_shapes

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    names = parameter_shapes(spec)
    return {k: v for k, v in state.items() if k in names}


def save(folder: Path, *, model, optimizer, spec, world: World, meta: dict[str, Any], tokenizer: Path) -> Path:
    """Write ``folder`` (collective: every process calls it)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from compiler.weights import save_weights

    tmp = folder.with_name(f".{folder.name}.tmp")
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(world)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with warnings.catch_warnings():  # "assuming the intent is to save in a single process"
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp / "dcp")
    full = full_state(model, spec)
    torch.save(torch.get_rng_state(), tmp / f"rng-{world.rank}.pt")
    barrier(world)
    if world.main:
        save_weights(full, tmp / "model.safetensors")
        shutil.copyfile(tokenizer, tmp / "tokenizer.json")
        (tmp / STATE).write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    barrier(world)
    return folder


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / STATE
    if not path.is_file() or not (folder / "dcp").is_dir():
        raise BlueprintError(f"--resume {folder}: not a blueprint training checkpoint (no {STATE} and dcp/)",
                             hint="name a checkpoint-N folder written by blueprint train")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BlueprintError(f"{path}: unreadable ({err})") from None


def latest(out: Path) -> Path:
    found = sorted((int(p.name.split("-")[1]), p) for p in out.glob("checkpoint-*")
                   if p.is_dir() and p.name.split("-")[1].isdigit() and (p / STATE).is_file())
    if not found:
        raise BlueprintError(f"--resume: no checkpoint-N folder in {out}", hint="pass the checkpoint folder to resume from")
    return found[-1][1]


def check_compatible(folder: Path, meta: dict, expected: dict) -> None:
    """Refuse a checkpoint whose spec, tokenizer, data or flags differ from this run's."""
    labels = {"spec_identity": "it was trained for another spec (architecture differs)",
              "tokenizer_sha256": "it was trained with another tokenizer",
              "data_fingerprint": "the --data files differ (paths, sizes or times)"}
    for key, why in labels.items():
        if meta.get(key) != expected[key]:
            raise BlueprintError(f"cannot resume from {folder}: {why}",
                                 hint="resume with the spec, tokenizer and data of the original run")
    theirs, ours = meta.get("options", {}), expected["options"]
    diff = [f"--{k.replace('_', '-')} {theirs.get(k)} (checkpoint) vs {ours[k]}" for k in ours if theirs.get(k) != ours[k]]
    if diff:
        raise BlueprintError(f"cannot resume exactly from {folder}: " + "; ".join(diff),
                             hint="resume with the same training flags as the original run")


def load(folder: Path, *, model, optimizer, world: World, seed: int) -> int:
    """Restore model, optimizer and RNG from ``folder`` (collective); returns the step."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    meta = read_meta(folder)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.load({"model": model_sd, "optim": optim_sd}, checkpoint_id=folder / "dcp")
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
    rng = folder / f"rng-{world.rank}.pt"
    if rng.is_file():
        torch.set_rng_state(torch.load(rng, weights_only=True))
    else:  # resumed on more processes than saved: a fresh, still deterministic stream
        torch.manual_seed(seed + world.rank + 7919 * int(meta["step"]))
    return int(meta["step"])

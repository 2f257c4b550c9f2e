"""The engines of the build gate (``compiler.export.verify``): how torch (in float64 or the
build's dtype) and onnxruntime each run a verification case, step by step, feeding back their
own cache, and how the float64 reference is made (weights widened in place, restored exactly).
docs/architecture.md, "Verification"."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from blueprint.errors import BlueprintError, first_line
from blueprint.window_cache import WindowLayer, bounded_feeds
from compiler.export.io import input_names, output_names, position_ids_for

if TYPE_CHECKING:
    from compiler.export.verify import Case

Arrays = dict[str, np.ndarray]


def replay(path: list[np.ndarray]):
    """Token choice that follows the float64 reference's path (every engine decodes the same ids)."""
    return lambda step, logits: path[step]


def ort_trajectories(session, spec, kv_cache: bool, cases: list[Case], firsts: list[Arrays],
                      paths: list[list[np.ndarray]], stop: threading.Event,
                      bounded: dict[int, WindowLayer]) -> list[list[Arrays]]:
    """Every case through onnxruntime (``session``: the future of ``open_session``)."""
    session = session.result()
    out = []
    for c, first, path in zip(cases, firsts, paths):
        if stop.is_set():
            break
        out.append(trajectory(ort_engine(session, spec, kv_cache, c, bounded), spec, first, c.steps,
                               replay(path)))
    return out


Engine = Callable[[Arrays], Arrays]


def open_session(onnx_path, written: Future | None = None, stop: threading.Event | None = None):
    import onnxruntime as ort

    if written is not None:
        written.result()  # raises what the writer raised
    if stop is not None and stop.is_set():
        return None  # verification was abandoned while the files were written

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # idle worker threads sleep instead of spinning: torch computes beside this session (a
    # scheduling choice only; the graph, its optimisations and kernels are a user's session's)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise BlueprintError(f"verification failed: onnxruntime cannot load the exported model: {first_line(err)}") from err


def torch_engine(module, spec, kv_cache: bool) -> Engine:
    """The torch graph as a function of numpy feeds; float inputs take the module's dtype."""
    import torch

    ins, outs = input_names(spec, kv_cache), output_names(spec, kv_cache)
    dtype = next((p.dtype for p in module.parameters()), torch.float32)

    def run(feeds: Arrays) -> Arrays:
        args = []
        for n in ins:
            t = torch.from_numpy(np.ascontiguousarray(feeds[n]))
            args.append(t.to(dtype) if t.is_floating_point() else t)
        with torch.no_grad():
            out = module(*args)
        return {n: out[n].detach().numpy() for n in outs}

    return run


def ort_engine(session, spec, kv_cache: bool, case: Case, bounded: dict[int, WindowLayer]) -> Engine:
    """onnxruntime on the feeds; a window-sized cache's first past (full layout, the torch
    engines' input) is turned into its bounded layout, later ones are its own presents."""
    names = output_names(spec, kv_cache)
    shape = case.shape

    def run(feeds: Arrays) -> Arrays:
        try:
            return dict(zip(names, session.run(names, bounded_feeds(feeds, bounded))))
        except Exception as err:
            raise BlueprintError(
                f"verification failed: case '{case.name}' (batch={shape.batch} seq={shape.seq}): "
                f"onnxruntime failed: {first_line(err)}",
                hint="the exported graph does not run at this shape; a dynamic axis was probably specialised",
            ) from err

    return run


def trajectory(engine: Engine, spec, first: Arrays, steps: tuple[int, ...],
                choose: Callable[[int, np.ndarray], np.ndarray]) -> list[Arrays]:
    """Outputs of the first call and of every step; each step feeds the engine's own cache."""
    outputs = [engine(first)]
    feeds = first
    for step, n in enumerate(steps):
        ids = choose(step, outputs[-1]["logits"])  # [b, n]
        b = ids.shape[0]
        mask = np.concatenate([feeds["attention_mask"], np.ones((b, n), dtype=np.int64)], axis=1)  # [b, total]
        nxt = {"input_ids": ids.astype(np.int64), "attention_mask": mask}
        if "position_ids" in feeds:
            nxt["position_ids"] = position_ids_for(mask, n)
        for name in feeds:
            if name.startswith("past_key_values."):
                nxt[name] = outputs[-1][name.replace("past_key_values.", "present.", 1)]
        feeds = nxt
        outputs.append(engine(feeds))
    return outputs


def greedy(spec, extra: list[np.ndarray], chosen: list[np.ndarray]):
    """Token choice of the reference: the argmax of the last position's logits (inside the
    vocabulary), then a chunk's further tokens from ``extra``; remembered in ``chosen``."""
    limit = spec.token_limit

    def choose(step: int, logits: np.ndarray) -> np.ndarray:
        top = np.argmax(logits[:, -1, :limit], axis=-1)[:, None]  # [b, 1]
        ids = np.concatenate([top, extra[step]], axis=1).astype(np.int64)  # [b, n]
        chosen.append(ids)
        return ids

    return choose


@contextmanager
def float64(module) -> Iterator[None]:
    """Widen every floating parameter and buffer to float64 in place (exact), and put each
    original tensor back afterwards (exact by construction, and no conversion back: the
    originals are held meanwhile, the model's own size beside its float64 copy)."""
    import torch

    saved, seen = [], set()
    for m in module.modules():
        for table in (m._parameters, m._buffers):
            for key, t in table.items():
                if t is None or not t.is_floating_point() or t.dtype == torch.float64:
                    continue
                if isinstance(t, torch.nn.Parameter):  # widened once, however many modules share it
                    if id(t) not in seen:
                        seen.add(id(t))
                        saved.append((t, t.data))
                else:
                    saved.append(((table, key), t))
    try:
        for owner, original in saved:
            if isinstance(owner, torch.nn.Parameter):
                owner.data = original.double()
            else:
                owner[0][owner[1]] = original.double()
        yield
    finally:
        for owner, original in saved:
            if isinstance(owner, torch.nn.Parameter):
                owner.data = original
            else:
                owner[0][owner[1]] = original

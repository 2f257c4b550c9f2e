"""Activation capture: run a compiled GraphModule and keep the intermediate tensors asked for.

A selector names what to keep, in the vocabulary the compiler already gives the graph
(``compiler.trace``):

- an fx node name: ``"embed"``, ``"layers_3"``, ``"final_norm"``, ``"head"``;
- a layer index (int): that layer's output hidden state [b, s, D] (with a KV cache, the
  ``hidden_{i}`` element of the layer's (x, K, V) result);
- a node kind (``node.meta["blueprint.kind"]``): ``"embed"``, ``"block"``, ``"final_norm"``,
  ``"head"``, ... — every node of that kind;
- a module path inside the graph's module tree: ``"layers.3.attn"``, ``"layers.3.ffn"``, or
  ``"layers.3.attn.probs"`` (per-head attention probabilities [b, H, s, t], present when the graph
  was compiled with ``attention="analysis"``); ``"attention"`` means every such probs module.

Graph nodes are read with a ``torch.fx.Interpreter`` (the graph runs exactly as compiled);
module paths with forward hooks that are removed again when the run ends.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import fx, nn

from blueprint.errors import BlueprintError
from compiler.components.attention import AttentionProbs
from compiler.signature import placeholder_name
from compiler.trace import KIND, LAYER

ATTENTION = "attention"


def attention_modules(gm: fx.GraphModule) -> dict[str, nn.Module]:
    """Module path -> probs module of every analysis attention, in layer order."""
    return {name: m for name, m in gm.named_modules() if isinstance(m, AttentionProbs)}


def layer_node(gm: fx.GraphModule, layer: int) -> fx.Node:
    """The node whose value is layer ``layer``'s output hidden state."""
    for node in gm.graph.nodes:
        if node.meta.get(LAYER) != layer:
            continue
        if node.meta.get(KIND) == "block_output" and node.args[1] == 0:
            return node  # cached layer: (x, K, V)[0]
        if node.meta.get(KIND) == "block" and not any(
                u.meta.get(KIND) == "block_output" for u in node.users):
            return node
    layers = sorted({n.meta[LAYER] for n in gm.graph.nodes if LAYER in n.meta})
    raise BlueprintError(f"capture: the graph has no layer {layer}",
                         hint=f"layers are {layers[0]}..{layers[-1]}" if layers else "the graph has no layers")


def resolve(gm: fx.GraphModule, selectors: Iterable[str | int]) -> tuple[dict[str, fx.Node], dict[str, nn.Module]]:
    """Map selectors to graph nodes and modules, keyed by the name their tensor is returned under.

    Raises:
        BlueprintError: a selector that matches nothing, with the names that exist.
    """
    nodes_by_name = {n.name: n for n in gm.graph.nodes}
    modules = dict(gm.named_modules())
    nodes: dict[str, fx.Node] = {}
    hooked: dict[str, nn.Module] = {}
    for sel in selectors:
        if isinstance(sel, bool) or not isinstance(sel, (int, str)):
            raise BlueprintError(f"capture: selector {sel!r} is neither a name nor a layer index")
        if isinstance(sel, int):
            node = layer_node(gm, sel)
            nodes[node.name] = node
        elif sel in nodes_by_name:
            nodes[sel] = nodes_by_name[sel]
        elif sel == ATTENTION:
            found = attention_modules(gm)
            if not found:
                raise BlueprintError("capture: this graph has no attention probabilities",
                                     hint="compile with compile_spec(spec, attention='analysis')")
            hooked.update(found)
        elif any(n.meta.get(KIND) == sel for n in gm.graph.nodes):
            nodes.update({n.name: n for n in gm.graph.nodes if n.meta.get(KIND) == sel})
        elif sel and sel in modules:
            hooked[sel] = modules[sel]
        else:
            kinds = sorted({str(n.meta[KIND]) for n in gm.graph.nodes if KIND in n.meta})
            raise BlueprintError(
                f"capture: {sel!r} is not a node, a layer, a kind or a module of this graph",
                hint=f"nodes: {', '.join(nodes_by_name)}; kinds: {', '.join(kinds)}; "
                     f"modules look like 'layers.0.attn'; '{ATTENTION}' for attention probabilities")
    return nodes, hooked


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, wanted: Mapping[str, fx.Node]):
        super().__init__(gm)
        self.wanted = {node: name for name, node in wanted.items()}
        self.seen: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        if n in self.wanted:
            self.seen[self.wanted[n]] = value
        return value


def ordered_inputs(gm: fx.GraphModule, inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> list:
    """The graph's positional inputs from a sequence (already ordered) or a mapping by input name
    (contract names like ``attention_mask`` or placeholder names)."""
    if not isinstance(inputs, Mapping):
        return list(inputs)
    names = gm.meta.get("blueprint.input_names") or [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    out = []
    for name in names:
        for key in (name, placeholder_name(name)):
            if key in inputs:
                out.append(inputs[key])
                break
        else:
            raise BlueprintError(f"capture: input {name!r} is missing",
                                 hint=f"the graph takes {', '.join(names)}")
    return out


def capture(gm: fx.GraphModule, inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
            nodes: Iterable[str | int]) -> dict[str, Any]:
    """Run ``gm`` on ``inputs`` and return the tensors the selectors name.

    Args:
        gm: a compiled GraphModule (``compiler.compile_spec``); it runs in its current mode
            (call ``.eval()`` and use ``torch.no_grad()`` for inference).
        inputs: the graph's inputs, positionally or by name.
        nodes: selectors (see the module docstring).
    Returns:
        Name -> captured value: node name for graph nodes, module path for modules (a module
        that runs more than once, e.g. recomputed under checkpointing, keeps its first output),
        plus ``"output"``, the graph's own result.
    Raises:
        BlueprintError: an unknown selector or a missing input.
    """
    wanted, hooked = resolve(gm, nodes)
    recorder = _Recorder(gm, wanted)
    handles = []
    for path, module in hooked.items():
        def keep(mod, args, out, path=path):
            recorder.seen.setdefault(path, out)
        handles.append(module.register_forward_hook(keep))
    try:
        output = recorder.run(*ordered_inputs(gm, inputs))
    finally:
        for handle in handles:
            handle.remove()
    ordered = {name: recorder.seen[name] for name in [*wanted, *hooked] if name in recorder.seen}
    ordered["output"] = output
    return ordered

"""Inspection: run a compiled graph with the analysis attention and read what it computes.

- ``capture(gm, inputs, nodes=[...])``: named intermediate tensors by fx node name, layer index,
  node kind or module path (``"attention"``: every layer's per-head probabilities).
- ``inspect_ids``: one sequence -> attention [heads, query, key] per layer, head scores
  (previous-token, induction, duplicate-token), entropy and the logit lens.
- ``load_subject`` / ``induction_probe``: what ``blueprint inspect`` runs on.
- ``write_inspection``: inspect.json, attention.npz, PNG pictures and report.html.
"""

from compiler.inspect.analyse import Inspection, inspect_ids
from compiler.inspect.capture import capture
from compiler.inspect.load import induction_probe, load_subject

__all__ = ["capture", "inspect_ids", "Inspection", "induction_probe", "load_subject"]

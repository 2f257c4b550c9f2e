"""``blueprint train``: train the compiled GraphModule on text (docs/train.md).

Modules, one job each: ``options`` (the run's settings, checked before any work), ``data``
(files -> tokenizer -> packed token file -> batches), ``parallel`` (torchrun, DDP, FSDP2),
``state`` (checkpoints and exact resume), ``report`` (metrics.jsonl, progress bar, loss.png)
and ``loop`` (the optimisation itself).
"""

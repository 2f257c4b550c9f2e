"""One small module per mechanism: attention, positions, norms, FFNs, the block, embeddings,
heads and the whole-model wrapper. ``compiler.lower`` chooses among them from the spec."""

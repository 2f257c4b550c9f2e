"""The back end: export a compiled GraphModule to ONNX, verify it in onnxruntime, write a build."""

"""The back end: export a compiled GraphModule to ONNX, verify it in onnxruntime, write a build.

- ``io``: the ONNX I/O contract (names, dynamic axes) and contract-shaped random inputs;
- ``onnx_export``: torch dynamo export made deterministic, saving with external data;
- ``verify``: onnxruntime vs the torch graph on padded, long and cached-decode cases;
- ``build``: the ``blueprint build`` pipeline, written atomically.

Entry point: ``compiler.export.build.build(spec_path, out_dir, ...)``. (Nothing is re-exported here:
the names would shadow the submodules ``build`` and ``verify``.)
"""

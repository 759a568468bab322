"""TensorRT's documented rules as data plus pure checks over an ONNX graph and its manifest: which
operators the ONNX parser takes per TensorRT version, what explicit quantization (Q/DQ) must look
like and where it must sit for INT8 kernels to fuse, what the DLA runs, and which I/O types the
runtime binds. Each rule carries the NVIDIA source it encodes.

No TensorRT here: `jetkit calibrate --runtime tensorrt`, `jetkit build`, `jetkit bundle`,
`jetkit flash` and `jetkit check` run these checks on the host, so that a model TensorRT would
reject is refused, with the reason, before it reaches a device.
"""

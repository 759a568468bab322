"""FP16 and INT8 artifacts (`jetkit calibrate`): FP16 ONNX, INT8 as a Q/DQ ONNX for ONNX Runtime or
TensorRT, TensorRT calibration caches for implicit INT8, sensitivity ranking and auto-exclusion,
the accuracy gate against FP32; and TensorRT engine building (`jetkit build`) where TensorRT is.

May import: `edge`. Must not import: torch, `trainer`, `deploy`, `demo`.
"""

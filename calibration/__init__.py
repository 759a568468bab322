"""FP16/INT8 artifacts, TensorRT engine building and the accuracy gate (issue 4, being built; so
far `trt_cache`, the TensorRT calibration cache format). Must not import torch or trainer."""

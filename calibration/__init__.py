"""FP16/INT8 artifacts, TensorRT engine building and the accuracy gate. Built in a later issue."""

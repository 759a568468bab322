"""Host-side training and distillation with torch: the built-in synthetic data set (`jetkit data
synth`), YOLO-format and COCO data sets, one detector family scaled by width and depth (teachers and
students are its sizes), training, distillation from a teacher, COCO mAP (`jetkit eval`) and ONNX
export with the manifest (`jetkit export`).

May import: `edge` (manifest, box ops, decode, evaluation). Must not import: `calibration`,
`deploy`, `demo`.
"""

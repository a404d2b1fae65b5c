"""The student network and the model bundle format (model.json + one ONNX file per retention level)."""

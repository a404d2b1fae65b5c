"""ONNX Runtime and ONNX helpers every backend shares: session options and the FP16 conversion."""
from __future__ import annotations

import warnings


def session_options(threads: int = 0, spin: bool = False):
    """Returns ONNX Runtime session options for a backend that shares the cores with other nodes:
    `threads` intra-op threads (0 = ONNX Runtime's default), one inter-op thread, all graph
    optimizations, and no busy-waiting between runs unless `spin` (a spinning idle worker takes CPU
    from the process beside it: detection measured 97 ms with spinning vs 57 ms without, 2 threads,
    one core busy)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return opts


def fp16_model(model_bytes: bytes) -> bytes:
    """Returns the ONNX model with FP16 weights and activations; inputs and outputs stay FP32 so the
    caller's buffers do not change."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():  # it warns for every weight below fp16's range: expected, not news
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        return convert_float_to_float16(onnx.load_from_string(model_bytes), keep_io_types=True).SerializeToString()


def batch_dynamic(model_bytes: bytes) -> bytes:
    """Returns the model with a symbolic batch size where its first input's batch is a fixed 1; other models, and
    every model where the onnx package is missing, come back as they are. The students' graphs compute every
    shape from their input, so a batch of n frames gives each frame's output of a batch of one."""
    try:
        import onnx
    except ImportError:
        return model_bytes
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    first = graph.input[0].type.tensor_type.shape.dim if graph.input else []
    if not first or first[0].dim_param or first[0].dim_value != 1:
        return model_bytes
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_value == 1:
            dims[0].dim_param = "batch"
    del graph.value_info[:]     # intermediate shapes recorded for batch 1: ONNX Runtime infers them again
    return model.SerializeToString()

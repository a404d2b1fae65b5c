"""The errors the inference backends (style and detection) raise; one definition for both."""


class ModelError(ValueError):
    """A model (or labels/calibration) file that is missing, corrupt or of the wrong shape; the
    message names the file."""


class BackendUnavailable(RuntimeError):
    """The backend's library or hardware is absent on this machine (e.g. TensorRT without a GPU); the
    message says why."""

"""Run a TFLite model with whichever interpreter the device has.

The runtime is imported lazily, in this order: ``ai_edge_litert`` (LiteRT, the maintained
package with aarch64 wheels), ``tflite_runtime`` (frozen at 2.14, Python <= 3.11), then
``tensorflow.lite`` (host machines). :class:`TFLiteModel` hides whether the model's input and
output tensors are float32 or int8: int8 tensors are quantised and dequantised with the
tensor's own scale and zero point (``real = (q - zero_point) * scale``).

LiteRT is pinned to the versions proven here for the Pi's CPUs (:data:`LITERT_PROVEN`, the same
range as the ``edge`` extra in pyproject.toml): on emulated Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5)
cores 2.0.2–2.1.6 pass a bundle's golden vectors, while 2.2.0 and 2.3.0 crash (SIGSEGV) while
constructing the interpreter, in the ARM CPU detection (``cpuinfo_arm_linux_init``) their
fully-connected kernel now calls, which reads qemu's pass-through of the host's x86 /proc/cpuinfo,
so they are unproven rather than known broken; the README's "BrainFlow on the Pi" section has the
evidence. A device refuses any other LiteRT version with one line rather than run it unproven.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import ErrorCode, HotspotError

LITERT_PROVEN = ((2, 0, 2), (2, 2))
"""ai-edge-litert versions proven on the Pi: at least the first, below the second (``>=2.0.2,<2.2``)."""
LITERT_REQUIREMENT = "ai-edge-litert>=2.0.2,<2.2"

RUNTIMES = (
    ("ai_edge_litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow.lite.python.interpreter", "tensorflow"),
)


def _release(version: str) -> tuple[int, ...] | None:
    parts = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
        if digits != part:
            break
    return tuple(parts) or None


def check_runtime_version(name: str, version: str, built_with: str | None = None) -> None:
    """Refuse a LiteRT version outside the proven range :data:`LITERT_PROVEN`.

    Parameters
    ----------
    name : str
        The runtime's import name (only ``ai_edge_litert`` is pinned).
    version : str
        Its installed version.
    built_with : str, optional
        The runtime the bundle was built with (its manifest's ``model.built_with``), named in the message.

    Raises
    ------
    HotspotError
        ``SELF_TEST_FAILED`` with one line naming the version, the range and how to fix it.
    """
    if name != "ai_edge_litert":
        return
    release = _release(version)
    low, below = LITERT_PROVEN
    if release is not None and low <= release < below:
        return
    built = f"; the bundle was built with {built_with}" if built_with else ""
    raise HotspotError(f"TFLite runtime ai_edge_litert {version} is outside the range proven on the Pi "
                       f"({LITERT_REQUIREMENT}){built}; install the wheelhouse's runtime (pip install "
                       f"'{LITERT_REQUIREMENT}')", ErrorCode.SELF_TEST_FAILED)


def interpreter_class(built_with: str | None = None) -> tuple[str, type]:
    """Return the name and ``Interpreter`` class of the first TFLite runtime that imports.

    Parameters
    ----------
    built_with : str, optional
        The runtime the bundle was built with, named when the installed one is refused.

    Returns
    -------
    name : str
        ``"ai_edge_litert"``, ``"tflite_runtime"`` or ``"tensorflow.lite"``, followed by the
        installed package version (e.g. ``"ai_edge_litert 2.3.0"``).
    cls : type
        Its ``Interpreter`` class.

    Raises
    ------
    HotspotError
        When none of the runtimes is installed, or LiteRT's version is outside the proven range.
    """
    for name, module_name, distribution in RUNTIMES:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is not None:
            check_runtime_version(name, version, built_with)  # before importing: an unproven build may crash
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if version is None:
            version = "(version unknown)"
            check_runtime_version(name, version, built_with)
        return f"{name} {version}", module.Interpreter
    raise HotspotError("no TFLite runtime found; install one with 'pip install ai-edge-litert'",
                       ErrorCode.BAD_BUNDLE)


def load_interpreter(model_content: bytes, num_threads: int = 1, built_with: str | None = None) -> tuple[str, Any]:
    """Build an interpreter for a model held in memory and allocate its tensors.

    Parameters
    ----------
    model_content : bytes
        The ``.tflite`` flatbuffer.
    num_threads : int
        Interpreter threads (1 is fastest for our small models on a Pi).
    built_with : str, optional
        The runtime the bundle was built with (see :func:`check_runtime_version`).

    Returns
    -------
    runtime : str
        Which runtime was used (see :func:`interpreter_class`).
    interpreter : Interpreter
        Ready to invoke.

    Raises
    ------
    HotspotError
        When the runtime rejects the model.
    """
    runtime, cls = interpreter_class(built_with)
    try:
        interpreter = cls(model_content=bytes(model_content), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise HotspotError(f"the TFLite runtime {runtime} cannot load the model ({err}); re-export the bundle "
                           "with a converter that matches the device's runtime", ErrorCode.BAD_BUNDLE) from None
    return runtime, interpreter


@dataclass(frozen=True)
class TensorQuantisation:
    """Type and affine quantisation of one model input or output tensor.

    Attributes
    ----------
    dtype : str
        ``"float32"`` or ``"int8"``.
    scale : float
        ``real = (q - zero_point) * scale``; 0 for float tensors.
    zero_point : int
        See ``scale``; 0 for float tensors.
    shape : tuple of int
        The tensor's shape for one window (batch dimension included, of size 1).
    """

    dtype: str
    scale: float
    zero_point: int
    shape: tuple[int, ...]

    @classmethod
    def from_details(cls, details: dict) -> "TensorQuantisation":
        """Build from one entry of ``get_input_details()`` / ``get_output_details()``."""
        scale, zero_point = details["quantization"]
        return cls(dtype=np.dtype(details["dtype"]).name, scale=float(scale), zero_point=int(zero_point),
                   shape=tuple(int(n) for n in details["shape"]))

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point, "shape": list(self.shape)}


class TFLiteModel:
    """A single-input, single-output TFLite model that takes and returns float32 arrays.

    Parameters
    ----------
    model_content : bytes
        The ``.tflite`` flatbuffer.
    num_threads : int
        Interpreter threads.
    built_with : str, optional
        The runtime the bundle was built with (its manifest's ``model.built_with``).

    Attributes
    ----------
    runtime : str
        The TFLite runtime in use.
    input, output : TensorQuantisation
        The input and output tensors' type and quantisation.
    """

    def __init__(self, model_content: bytes, num_threads: int = 1, built_with: str | None = None) -> None:
        self.runtime, self._interpreter = load_interpreter(model_content, num_threads, built_with)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise HotspotError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs, expected one of "
                               "each; re-export it from a model directory", ErrorCode.BAD_BUNDLE)
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        self.input = TensorQuantisation.from_details(inputs[0])
        self.output = TensorQuantisation.from_details(outputs[0])
        for tensor in (self.input, self.output):
            if tensor.dtype not in ("float32", "int8"):
                raise HotspotError(f"model tensors must be float32 or int8, not {tensor.dtype}; re-export the model",
                                   ErrorCode.BAD_BUNDLE)

    def _quantise_input(self, window: np.ndarray) -> np.ndarray:
        if self.input.dtype == "float32":
            return window.astype(np.float32)
        q = np.round(window / self.input.scale) + self.input.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def _dequantise_output(self, raw: np.ndarray) -> np.ndarray:
        if self.output.dtype == "float32":
            return raw.astype(np.float32)
        return ((raw.astype(np.float32) - self.output.zero_point) * self.output.scale).astype(np.float32)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Run the model on one window or a batch of windows, one window per invocation.

        Parameters
        ----------
        inputs : ndarray, shape (rows, cols) or (n, rows, cols)
            One window or a batch, in real units (already normalised). Each window is reshaped
            to the model's input shape (e.g. a trailing channel axis of 1).

        Returns
        -------
        ndarray, float32, shape (n_outputs,) or (n, n_outputs)
            The dequantised output(s).
        """
        window_shape = self.input.shape[1:]
        inputs = np.asarray(inputs, dtype=np.float32)
        single = inputs.ndim == 2
        batch = inputs[None] if single else inputs
        if batch.ndim != 3 or batch[0].size != int(np.prod(window_shape)):
            raise HotspotError(f"model input must be one (rows, cols) window or a batch of them with "
                               f"{int(np.prod(window_shape))} values each (model input {window_shape}), got shape "
                               f"{inputs.shape}; the bundle does not match the signal pipeline", ErrorCode.BAD_BUNDLE)
        batch = batch.reshape((-1, *window_shape))
        outputs = []
        for window in batch:
            self._interpreter.set_tensor(self._input_index, self._quantise_input(window)[None])
            self._interpreter.invoke()
            outputs.append(self._dequantise_output(self._interpreter.get_tensor(self._output_index)[0]))
        result = np.stack(outputs)
        return result[0] if single else result

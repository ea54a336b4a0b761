"""The 2D CNN that regresses the 3D motor hotspot (head frame, mm) from one input window.

Architecture and why
--------------------
One input window is a 2-D array: rows are EEG channels (in the model's left-hemisphere order),
columns are time samples (levels ``raw``, ``filtered``, ``clean``, ``erd``) or frequency bins
(``psd``). What carries the hotspot's position is the *spatial* distribution of the task-related
rhythm change over the channels, so the network is spatial-first, in the spirit of EEGNet /
ShallowConvNet:

1. ``spatial``: ``n_spatial`` learned linear combinations of the channels (a 2D convolution with
   a ``rows x 1`` kernel, written as a transpose plus a Dense layer because that is a single matrix
   product, about three times faster on a CPU). Each filter is a scalp topography; this collapses
   the channel axis at once, which also makes the network cheap.
2. ``temporal``: a depthwise Conv2D along the columns (``1 x kernel``): one temporal (or spectral)
   filter per spatial filter, e.g. a mu/beta band-pass on time inputs.
3. ReLU6 then average pooling: rectify-and-smooth, an envelope (power) estimate per spatial filter.
   ReLU6 keeps activations bounded, which suits int8 quantisation.
4. ``mixing``: a small Conv2D along the pooled columns, ReLU6, global average pooling.
5. ``hidden`` Dense with ReLU6, dropout, then ``Dense(3)`` in standardised units and a frozen
   ``Dense(3)`` layer ``to_head_mm`` (diagonal kernel = SD, bias = mean of the training hotspots,
   per axis) so that the model itself outputs head-frame millimetres and needs no post-processing
   on the device. Being weights, not layer settings, the scaling lets one compiled network be
   re-initialised and re-trained across evaluation folds (:func:`train.training.fit_network`).

Batch normalisation after the convolutions folds into the convolution weights at conversion time.
With the defaults the network has a few thousand parameters (about 3-6 k depending on the channel
count), i.e. well under the 64 KB int8 budget (:func:`int8_size_bytes` estimates it; the
conversion step measures the real file).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.tensorflow_setup import import_tensorflow

INT8_BUDGET_BYTES = 64 * 1024


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :func:`build_model` (fixed in ``train/configs/training.toml``).

    Attributes
    ----------
    n_spatial : int
        Number of spatial filters (topographies).
    temporal_kernel : int
        Length of the depthwise temporal/spectral filter in columns (clipped to the input width).
    pool : int
        Average-pooling width after rectification (clipped to the input width).
    n_mixing : int
        Filters of the mixing convolution.
    mixing_kernel : int
        Its width in pooled columns (clipped).
    hidden : int
        Units of the hidden Dense layer.
    dropout : float
        Dropout rate before the output layer.
    """

    n_spatial: int = 16
    temporal_kernel: int = 25
    pool: int = 8
    n_mixing: int = 16
    mixing_kernel: int = 4
    hidden: int = 32
    dropout: float = 0.25

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Build from a mapping (e.g. a TOML table), rejecting unknown keys."""
        from edge.errors import ErrorCode, HotspotError

        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise HotspotError(f"unknown model setting(s) {', '.join(sorted(unknown))}; "
                               f"known: {', '.join(cls.__dataclass_fields__)}", ErrorCode.BAD_CONFIG)
        config = cls(**data)
        ints = ("n_spatial", "temporal_kernel", "pool", "n_mixing", "mixing_kernel", "hidden")
        if any(not isinstance(getattr(config, name), int) or getattr(config, name) < 1 for name in ints):
            raise HotspotError(f"model settings {', '.join(ints)} must be positive integers", ErrorCode.BAD_CONFIG)
        if not 0.0 <= float(config.dropout) < 1.0:
            raise HotspotError("model setting dropout must be in [0, 1)", ErrorCode.BAD_CONFIG)
        return config


def build_model(input_shape: tuple[int, int], target_mean: np.ndarray, target_std: np.ndarray,
                config: ModelConfig = ModelConfig()):
    """Build the hotspot CNN.

    Parameters
    ----------
    input_shape : (int, int)
        ``(rows, cols)`` of one normalised input window (channels x time or frequency).
    target_mean, target_std : ndarray, shape (3,)
        Per-axis mean and SD of the training hotspots (head frame, mm); the network predicts in
        standardised units and a fixed output layer maps back to millimetres.
    config : ModelConfig
        Layer sizes.

    Returns
    -------
    keras.Model
        Input ``(rows, cols)`` float32, output ``(3,)`` head-frame millimetres.
    """
    import_tensorflow()
    import keras
    from keras import layers

    rows, cols = int(input_shape[0]), int(input_shape[1])
    temporal_kernel = min(config.temporal_kernel, cols)
    pool = max(1, min(config.pool, cols // 2))
    pooled = max(1, cols // pool)
    mixing_kernel = min(config.mixing_kernel, pooled)
    std = np.maximum(np.asarray(target_std, dtype=float), 1e-3)

    inputs = keras.Input(shape=(rows, cols), name="window")
    x = layers.Permute((2, 1), name="columns_first")(inputs)
    x = layers.Dense(config.n_spatial, use_bias=False, name="spatial")(x)
    x = layers.Reshape((1, cols, config.n_spatial), name="as_image")(x)
    x = layers.BatchNormalization(name="spatial_bn")(x)
    x = layers.DepthwiseConv2D((1, temporal_kernel), padding="same", use_bias=False, name="temporal")(x)
    x = layers.BatchNormalization(name="temporal_bn")(x)
    x = layers.ReLU(max_value=6.0, name="rectify")(x)
    x = layers.AveragePooling2D((1, pool), name="envelope")(x)
    x = layers.Conv2D(config.n_mixing, (1, mixing_kernel), padding="same", use_bias=False, name="mixing")(x)
    x = layers.BatchNormalization(name="mixing_bn")(x)
    x = layers.ReLU(max_value=6.0, name="mixing_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(config.hidden, name="hidden")(x)
    x = layers.ReLU(max_value=6.0, name="hidden_relu")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    x = layers.Dense(3, name="standardised")(x)
    outputs = layers.Dense(3, trainable=False, name="to_head_mm",
                           kernel_initializer=keras.initializers.Constant(np.diag(std)),
                           bias_initializer=keras.initializers.Constant(np.asarray(target_mean, dtype=float)))(x)
    return keras.Model(inputs, outputs, name="hotspot_cnn")


def int8_size_bytes(model) -> int:
    """Estimate the int8 weight size of ``model``: one byte per weight, four per bias or scale.

    Batch-normalisation parameters are counted although they fold into the preceding convolution.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    int
        Estimated bytes of weights after full-integer quantisation (without flatbuffer overhead).
    """
    total = 0
    for weight in model.weights:
        size = int(np.prod(weight.shape))
        total += size if len(weight.shape) >= 2 else 4 * size
    return total

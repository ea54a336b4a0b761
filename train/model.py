"""The 2D CNNs that regress the 3D motor hotspot and its uncertainty (cap frame, mm) from one input.

Both networks end the same way: ``Dense(6)`` in standardised units and a frozen ``to_mm`` layer, so the
model itself outputs ``[mean_x, mean_y, mean_z]`` in cap-frame millimetres (model frame) and
``[log_sd_x, log_sd_y, log_sd_z]``, the natural log of a per-axis standard deviation in mm; training
minimises the Gaussian negative log-likelihood (:func:`gaussian_nll`).

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
5. ``hidden`` Dense with ReLU6, dropout, then ``Dense(6)`` in standardised units and a frozen
   ``Dense(6)`` layer ``to_mm`` (diagonal kernel = SD for the means, 1 for the log-SDs; bias = mean of
   the training hotspots and log of their SD, per axis) so that the model itself outputs millimetres
   and needs no post-processing on the device. Being weights, not layer settings, the scaling lets one
   compiled network be re-initialised and re-trained across evaluation folds
   (:func:`train.fitting.fit_network`).

The source level's image (:mod:`edge.source`: power change and pattern fit per band on a cortical grid)
gets :func:`build_source_model` instead: a small convolution over the grid and a 1x1 convolution give a
score per grid point, a softmax turns the scores into weights, and a frozen layer holding the grid
points' coordinates gives their weighted centre (a differentiable peak: "spatial soft-argmax", as in
keypoint regression); a linear layer maps it to the hotspot. The uncertainty head sees how peaked the
weights are, how strong the desynchronisation is and how far the centre lies from the training hotspots'
mean, so that a map peaking somewhere implausible gets a wide SD and the prior combination
(:mod:`edge.estimate`) pulls it back.

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
    source_filters : int
        Level "source": filters of the 3x3 convolution over the grid (0: none, scores straight from the
        planes).
    source_l2 : float
        Level "source": L2 penalty on the layer mapping the weighted grid centre to the hotspot.
    """

    n_spatial: int = 16
    temporal_kernel: int = 25
    pool: int = 8
    n_mixing: int = 16
    mixing_kernel: int = 4
    hidden: int = 32
    dropout: float = 0.25
    source_filters: int = 0
    source_l2: float = 0.01

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Build from a mapping (e.g. a TOML table), rejecting unknown keys and wrong types."""
        from edge.errors import ErrorCode, HotspotError
        from edge.validation import check_keys, validate_type

        where = "training configuration"
        validate_type(data, dict, "[model]", where)
        check_keys(data, cls.__dataclass_fields__, "[model]", where)
        defaults = cls()
        config = cls(**{key: validate_type(value, type(getattr(defaults, key)), f"[model] {key}", where)
                        for key, value in data.items()})
        ints = ("n_spatial", "temporal_kernel", "pool", "n_mixing", "mixing_kernel", "hidden")
        if any(not isinstance(getattr(config, name), int) or getattr(config, name) < 1 for name in ints):
            raise HotspotError(f"model settings {', '.join(ints)} must be positive integers", ErrorCode.BAD_CONFIG)
        if not 0.0 <= float(config.dropout) < 1.0:
            raise HotspotError("model setting dropout must be in [0, 1)", ErrorCode.BAD_CONFIG)
        if not isinstance(config.source_filters, int) or config.source_filters < 0:
            raise HotspotError("model setting source_filters must be an integer >= 0", ErrorCode.BAD_CONFIG)
        if not 0.0 <= float(config.source_l2) < 10.0:
            raise HotspotError("model setting source_l2 must be in [0, 10)", ErrorCode.BAD_CONFIG)
        return config


def laplace_nll(y_true, y_pred):
    """Mean Laplace negative log-likelihood of ``[mean(3), log_scale(3)]`` (mm): robust to outlying sessions."""
    import keras

    from edge.contract import LOG_SD_RANGE

    mean, log_sd = y_pred[:, :3], keras.ops.clip(y_pred[:, 3:], *LOG_SD_RANGE)
    # a Laplace distribution with standard deviation s has scale s / sqrt(2)
    return keras.ops.mean(keras.ops.abs(y_true - mean) * keras.ops.exp(-log_sd) * np.sqrt(2.0) + log_sd)


def gaussian_nll(y_true, y_pred):
    """Mean Gaussian negative log-likelihood of per-axis predictions ``[mean(3), log_sd(3)]`` (mm), Keras loss."""
    import keras

    from edge.contract import LOG_SD_RANGE

    mean, log_sd = y_pred[:, :3], keras.ops.clip(y_pred[:, 3:], *LOG_SD_RANGE)
    return keras.ops.mean(0.5 * keras.ops.square((y_true - mean) * keras.ops.exp(-log_sd)) + log_sd)


def _to_mm(layers, keras, x, target_mean: np.ndarray, target_std: np.ndarray):
    """``Dense(6)`` in standardised units, then the frozen map to [mean mm (3), log-SD mm (3)]."""
    std = np.maximum(np.asarray(target_std, dtype=float), 1e-3)
    x = layers.Dense(6, name="standardised")(x)
    kernel = np.diag(np.concatenate([std, np.ones(3)]))
    bias = np.concatenate([np.asarray(target_mean, dtype=float), np.log(std)])
    return layers.Dense(6, trainable=False, name="to_mm", kernel_initializer=keras.initializers.Constant(kernel),
                        bias_initializer=keras.initializers.Constant(bias))(x)


def build_model(input_shape: tuple[int, int], target_mean: np.ndarray, target_std: np.ndarray,
                config: ModelConfig = ModelConfig()):
    """Build the hotspot CNN.

    Parameters
    ----------
    input_shape : (int, int)
        ``(rows, cols)`` of one normalised input window (channels x time or frequency).
    target_mean, target_std : ndarray, shape (3,)
        Per-axis mean and SD of the training hotspots (cap frame, mm); the network predicts in
        standardised units and a fixed output layer maps back to millimetres.
    config : ModelConfig
        Layer sizes.

    Returns
    -------
    keras.Model
        Input ``(rows, cols)`` float32, output ``(6,)``: mean (mm) and log-SD (mm) per axis.
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
    return keras.Model(inputs, _to_mm(layers, keras, x, target_mean, std), name="hotspot_cnn")


def build_source_model(input_shape: tuple[int, int], grid_mm: np.ndarray, target_mean: np.ndarray,
                       target_std: np.ndarray, config: ModelConfig = ModelConfig()):
    """Build the source level's network (spatial soft-argmax over the cortical grid).

    Parameters
    ----------
    input_shape : (int, int)
        ``(n_planes * rows, cols)`` of one normalised source image (:mod:`edge.source`).
    grid_mm : ndarray, shape (rows * cols, 3)
        The grid points (cap frame, mm), row-major.
    target_mean, target_std : ndarray, shape (3,)
        Per-axis mean and SD of the training hotspots (cap frame, mm).
    config : ModelConfig
        ``source_filters`` and ``source_l2``.

    Returns
    -------
    keras.Model
        Input ``(n_planes * rows, cols)`` float32, output ``(6,)``: mean (mm) and log-SD (mm) per axis.
    """
    import keras
    from keras import layers

    rows_total, cols = int(input_shape[0]), int(input_shape[1])
    n_points = len(grid_mm)
    rows = n_points // cols
    planes = rows_total // rows
    std = np.maximum(np.asarray(target_std, dtype=float), 1e-3)
    standardised_grid = (np.asarray(grid_mm, dtype=float) - np.asarray(target_mean, dtype=float)) / std

    inputs = keras.Input(shape=(rows_total, cols), name="window")
    x = layers.Reshape((planes, rows, cols), name="planes")(inputs)
    x = layers.Permute((2, 3, 1), name="planes_last")(x)
    if config.source_filters:
        x = layers.Conv2D(config.source_filters, 3, padding="same", name="grid_conv")(x)
        x = layers.ReLU(max_value=6.0, name="grid_relu")(x)
    scores = layers.Conv2D(1, 1, name="score")(x)
    weights = layers.Softmax(name="weights")(layers.Flatten(name="scores")(scores))
    centre = layers.Dense(3, use_bias=False, trainable=False, name="grid_centre",
                          kernel_initializer=keras.initializers.Constant(standardised_grid))(weights)
    peak = layers.Dense(3, kernel_regularizer=keras.regularizers.l2(config.source_l2), name="calibrate")(centre)
    sharpness = layers.GlobalMaxPooling1D(name="sharpness")(layers.Reshape((n_points, 1), name="as_points")(weights))
    strength = layers.GlobalMaxPooling2D(name="strength")(x)
    # how far the weighted centre lies from the training hotspots' mean (standardised units, squared)
    distance = layers.Dense(1, use_bias=False, trainable=False, name="distance", kernel_initializer="ones")(
        layers.Multiply(name="centre_squared")([centre, centre]))
    spread = layers.Dense(3, kernel_initializer="zeros", name="spread")(  # starts at the training hotspots' SD
        layers.Concatenate(name="evidence")([sharpness, strength, distance]))
    x = layers.Concatenate(name="mean_and_spread")([peak, spread])
    return keras.Model(inputs, _to_mm_identity(layers, keras, x, target_mean, std), name="hotspot_source_net")


def _to_mm_identity(layers, keras, x, target_mean: np.ndarray, std: np.ndarray):
    """The frozen map to [mean mm, log-SD mm] for inputs already in standardised units (no extra Dense)."""
    kernel = np.diag(np.concatenate([std, np.ones(3)]))
    bias = np.concatenate([np.asarray(target_mean, dtype=float), np.log(std)])
    return layers.Dense(6, trainable=False, name="to_mm", kernel_initializer=keras.initializers.Constant(kernel),
                        bias_initializer=keras.initializers.Constant(bias))(x)


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

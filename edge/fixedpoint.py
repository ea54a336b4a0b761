"""Fixed-point biquad cascades (direct form I) with CMSIS-DSP's exact integer semantics.

The same integer coefficients run unchanged in ``arm_biquad_cascade_df1_q31`` / ``_q15`` on a Cortex-M,
and this module reproduces those functions bit for bit (tested against the ``cmsisdsp`` package):

* Each stage computes ``y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] + a1 y[n-1] + a2 y[n-2]``. The feedback
  coefficients carry CMSIS's sign: they are the *negated* ``a1, a2`` of SciPy's ``sos`` rows.
* Coefficients are stored divided by ``2**post_shift`` so they fit in [-1, 1); the accumulator is shifted
  left by ``post_shift`` to undo it.
* q31: coefficients per stage ``{b0, b1, b2, a1, a2}``; 64-bit accumulator of q31 x q31 products (2.62
  format, one guard bit); the output is bits ``[31 - post_shift, 63 - post_shift)`` of the accumulator,
  i.e. it **wraps** around (no saturation), exactly as the C code's ``(q31_t)(acc >> (31 - postShift))``.
* q15: coefficients per stage ``{b0, 0, b1, b2, a1, a2}`` (the 0 pads for 16-bit SIMD); 64-bit accumulator
  (34.30, no internal overflow), shifted right by ``15 - post_shift``, truncated to 32 bits and
  **saturated** to 16 bits (``__SSAT(acc >> shift, 16)``).
* Right shifts are arithmetic (they round towards minus infinity), there is no rounding constant.

Scaling between microvolts and fixed point: a :class:`FixedPointFilter` carries ``full_scale_uv``, the
microvolt value that corresponds to 1.0 at its input, and ``gain``, the pass-band gain its integers carry
(the output's full scale is ``full_scale_uv / gain``). The q31 default puts the ADS1299's whole input range
(+-187 500 uV at gain 24) at +-0.25, i.e. two guard bits, as CMSIS requires for q31 input; one ADC count
is then exactly ``2**6`` q31 units, so counts convert without rounding (the board's scaling:
:func:`edge.board.ads1299_uv_per_count`). See ``train.filter_design`` for how ``full_scale_uv``, ``gain``
and ``post_shift`` are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.board import DEFAULT_GAIN, ads1299_uv_per_count
from edge.errors import ErrorCode, HotspotError

@dataclass(frozen=True)
class QFormat:
    """One CMSIS fixed-point format."""

    name: str
    frac_bits: int
    coeffs_per_stage: int
    dtype: type

    @property
    def min_int(self) -> int:
        """Smallest representable integer."""
        return -(1 << self.frac_bits)

    @property
    def max_int(self) -> int:
        """Largest representable integer."""
        return (1 << self.frac_bits) - 1


Q_FORMATS = {
    "q31": QFormat("q31", 31, 5, np.int32),
    "q15": QFormat("q15", 15, 6, np.int16),
}


def q_format(name: str) -> QFormat:
    """Return the :class:`QFormat` called ``name`` ("q31" or "q15")."""
    try:
        return Q_FORMATS[name]
    except KeyError:
        raise HotspotError(f"unknown fixed-point format {name!r}; use one of {', '.join(Q_FORMATS)}",
                           ErrorCode.BAD_CONFIG) from None


def uv_to_fixed(uv: np.ndarray, full_scale_uv: float, q_format_name: str = "q31") -> np.ndarray:
    """Convert microvolts to fixed-point integers (round to nearest, saturate).

    Parameters
    ----------
    uv : array_like
        Samples in microvolts. Non-finite samples become 0 (callers hold the last valid sample first).
    full_scale_uv : float
        The microvolt value that maps to 1.0.
    q_format_name : {"q31", "q15"}
        Target format.

    Returns
    -------
    ndarray of int64
        Integers in the format's range ``[-2**f, 2**f - 1]``.
    """
    fmt = q_format(q_format_name)
    scaled = np.asarray(uv, dtype=np.float64) * ((1 << fmt.frac_bits) / full_scale_uv)
    scaled = np.where(np.isfinite(scaled), scaled, 0.0)
    return np.clip(np.rint(scaled), fmt.min_int, fmt.max_int).astype(np.int64)


def fixed_to_uv(fixed: np.ndarray, full_scale_uv: float, q_format_name: str = "q31") -> np.ndarray:
    """Convert fixed-point integers back to microvolts (float64)."""
    fmt = q_format(q_format_name)
    return np.asarray(fixed, dtype=np.float64) * (full_scale_uv / (1 << fmt.frac_bits))


def counts_to_fixed(counts: np.ndarray, full_scale_uv: float, q_format_name: str = "q31",
                    gain: int = DEFAULT_GAIN) -> np.ndarray:
    """Convert raw ADS1299 counts (24-bit signed) to fixed point via their microvolt value."""
    return uv_to_fixed(np.asarray(counts, dtype=np.float64) * ads1299_uv_per_count(gain), full_scale_uv,
                       q_format_name)


def fixed_to_counts(fixed: np.ndarray, full_scale_uv: float, q_format_name: str = "q31",
                    gain: int = DEFAULT_GAIN) -> np.ndarray:
    """Convert fixed-point integers back to (fractional) ADS1299 counts."""
    return fixed_to_uv(fixed, full_scale_uv, q_format_name) / ads1299_uv_per_count(gain)


@dataclass(frozen=True)
class FixedPointFilter:
    """A biquad cascade's integer coefficients in CMSIS-DSP layout, and its input scaling.

    Attributes
    ----------
    q_format : {"q31", "q15"}
        Arithmetic and coefficient format.
    coeffs : tuple of int
        CMSIS layout: q31 ``{b0, b1, b2, a1, a2}`` per stage, q15 ``{b0, 0, b1, b2, a1, a2}`` per stage;
        ``a1, a2`` negated relative to SciPy; all values divided by ``2**post_shift``.
    post_shift : int
        CMSIS ``postShift`` (0 <= post_shift < frac bits).
    n_stages : int
        Number of second-order stages.
    full_scale_uv : float
        Microvolts that map to 1.0 at the filter's input.
    description : str
        What the filter is (design spec), for humans and logs.
    gain : float
        The filter's pass-band gain. The integers carry it (so that the band-limited output uses more bits
        than the DC-laden input) and :meth:`to_uv` divides it out again: the output's full scale is
        ``full_scale_uv / gain``.
    """

    q_format: str
    coeffs: tuple[int, ...]
    post_shift: int
    n_stages: int
    full_scale_uv: float
    description: str = field(default="")
    gain: float = 1.0

    def __post_init__(self) -> None:
        fmt = q_format(self.q_format)
        object.__setattr__(self, "coeffs", tuple(int(c) for c in self.coeffs))
        if self.n_stages < 1 or len(self.coeffs) != self.n_stages * fmt.coeffs_per_stage:
            raise HotspotError(f"{self.q_format} filter with {self.n_stages} stage(s) needs "
                               f"{fmt.coeffs_per_stage} coefficients per stage, got {len(self.coeffs)}; "
                               "re-design the filter", ErrorCode.BAD_CONFIG)
        if any(c < fmt.min_int or c > fmt.max_int for c in self.coeffs):
            raise HotspotError(f"filter coefficients must fit in {self.q_format}; re-design the filter",
                               ErrorCode.BAD_CONFIG)
        if fmt.name == "q15" and any(self.coeffs[6 * s + 1] != 0 for s in range(self.n_stages)):
            raise HotspotError("q15 coefficients need the padding 0 after b0 in every stage "
                               "({b0, 0, b1, b2, a1, a2}); re-design the filter", ErrorCode.BAD_CONFIG)
        if not 0 <= self.post_shift < fmt.frac_bits:
            raise HotspotError(f"post_shift must be in [0, {fmt.frac_bits}), got {self.post_shift}",
                               ErrorCode.BAD_CONFIG)
        for name in ("full_scale_uv", "gain"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise HotspotError(f"{name} must be a positive number, got {value}", ErrorCode.BAD_CONFIG)

    @property
    def output_full_scale_uv(self) -> float:
        """Microvolts that map to 1.0 at the filter's output: ``full_scale_uv / gain``."""
        return self.full_scale_uv / self.gain

    @property
    def stage_coefficients(self) -> np.ndarray:
        """Integer coefficients as an (n_stages, 5) int64 array of ``[b0, b1, b2, a1, a2]`` (CMSIS signs)."""
        table = np.asarray(self.coeffs, dtype=np.int64).reshape(self.n_stages, -1)
        if self.q_format == "q15":
            table = table[:, [0, 2, 3, 4, 5]]
        return table

    def as_sos(self) -> np.ndarray:
        """The exact real-valued filter the integers implement, as SciPy-style ``sos`` (n_stages, 6)."""
        fmt = q_format(self.q_format)
        scale = 2.0 ** (self.post_shift - fmt.frac_bits)
        b0, b1, b2, a1, a2 = (self.stage_coefficients.astype(np.float64) * scale).T
        return np.column_stack([b0, b1, b2, np.ones_like(b0), -a1, -a2])

    def to_fixed(self, uv: np.ndarray) -> np.ndarray:
        """Microvolts to this filter's input integers (see :func:`uv_to_fixed`)."""
        return uv_to_fixed(uv, self.full_scale_uv, self.q_format)

    def to_uv(self, fixed: np.ndarray) -> np.ndarray:
        """This filter's output integers to microvolts (see :func:`fixed_to_uv`), pass-band gain removed."""
        return fixed_to_uv(fixed, self.output_full_scale_uv, self.q_format)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        return {"q_format": self.q_format, "coeffs": list(self.coeffs), "post_shift": self.post_shift,
                "n_stages": self.n_stages, "full_scale_uv": self.full_scale_uv, "description": self.description,
                "gain": self.gain}

    @classmethod
    def from_dict(cls, data: dict) -> "FixedPointFilter":
        """Build from :meth:`to_dict` output, validating every field."""
        try:
            return cls(q_format=str(data["q_format"]), coeffs=tuple(int(c) for c in data["coeffs"]),
                       post_shift=int(data["post_shift"]), n_stages=int(data["n_stages"]),
                       full_scale_uv=float(data["full_scale_uv"]), description=str(data.get("description", "")),
                       gain=float(data.get("gain", 1.0)))
        except (KeyError, TypeError, ValueError) as err:
            raise HotspotError(f"filter description is incomplete or malformed ({err!r}); it needs q_format, "
                               "coeffs, post_shift, n_stages, full_scale_uv", ErrorCode.BAD_CONFIG) from None


class BiquadCascade:
    """Streaming CMSIS-DSP DF1 biquad cascade over several channels at once.

    State is kept per channel between calls, so filtering a signal in one call or in any split into
    chunks gives identical integers. The per-sample recursion runs once per sample for all channels and
    all stages together: stage ``k`` is skewed by ``k`` samples so that every stage reads values its
    predecessor produced one step earlier.

    Parameters
    ----------
    spec : FixedPointFilter
        Coefficients and format.
    n_channels : int
        Number of channels filtered in parallel.
    """

    #: Samples processed per internal block (bounds the working memory of long calls).
    BLOCK = 4096

    def __init__(self, spec: FixedPointFilter, n_channels: int) -> None:
        self.spec = spec
        self.n_channels = int(n_channels)
        fmt = q_format(spec.q_format)
        self._shift = fmt.frac_bits - spec.post_shift
        self._q15 = fmt.name == "q15"
        k = spec.n_stages
        # acc[k] = b0 s_k[n] + b1 s_k[n-1] + b2 s_k[n-2] + a1 s_{k+1}[n-1] + a2 s_{k+1}[n-2], where stream
        # s_0 is the input and s_{k+1} the output of stage k. With the skewed layout the three rows
        # (t-2, t-1, t) of streams 0..K hold exactly these operands.
        b0, b1, b2, a1, a2 = spec.stage_coefficients.T
        mix = np.zeros((k, 3, k + 1), dtype=np.int64)
        stages = np.arange(k)
        mix[stages, 2, stages] = b0
        mix[stages, 1, stages] = b1
        mix[stages, 0, stages] = b2
        mix[stages, 2, stages + 1] = a1
        mix[stages, 1, stages + 1] = a2
        self._mix = mix.reshape(k, 3 * (k + 1))
        self._history = np.zeros((k + 1, 2, self.n_channels), dtype=np.int64)

    @property
    def state(self) -> np.ndarray:
        """The CMSIS state per channel: (n_channels, n_stages, 4) of ``[x[n-1], x[n-2], y[n-1], y[n-2]]``."""
        h = self._history
        per_stage = np.stack([h[:-1, 0], h[:-1, 1], h[1:, 0], h[1:, 1]], axis=1)  # (stages, 4, channels)
        return np.transpose(per_stage, (2, 0, 1)).copy()

    def reset(self) -> None:
        """Zero the state of every channel (CMSIS ``init`` with a zeroed state buffer)."""
        self._history[:] = 0

    def warm_start(self, first_fixed: np.ndarray, channels: np.ndarray | None = None) -> None:
        """Set the state as if each channel's input had been constant at ``first_fixed`` forever.

        This removes the start-up transient a DC offset (tens of millivolts on a Cyton) would cause.

        Parameters
        ----------
        first_fixed : array_like of int, shape (n_channels,) or (len(channels),)
            Each channel's first input sample, in fixed point.
        channels : array_like of int, optional
            Warm-start only these channels (default: all).
        """
        rows = np.arange(self.n_channels) if channels is None else np.asarray(channels, dtype=np.int64)
        value = np.asarray(first_fixed, dtype=np.float64).reshape(len(rows))
        sos = self.spec.as_sos()
        fmt = q_format(self.spec.q_format)
        self._history[0][:, rows] = np.rint(value)
        for stage, (b0, b1, b2, _, a1, a2) in enumerate(sos):
            value = value * (b0 + b1 + b2) / (1.0 + a1 + a2)
            self._history[stage + 1][:, rows] = np.clip(np.rint(value), fmt.min_int, fmt.max_int)

    def process(self, fixed: np.ndarray) -> np.ndarray:
        """Filter one block of fixed-point samples and carry the state on.

        Parameters
        ----------
        fixed : array_like of int, shape (n_channels, n_samples)
            Input integers in the filter's q format.

        Returns
        -------
        ndarray of int64, shape (n_channels, n_samples)
            Output integers, identical to CMSIS-DSP's for the same input and state.
        """
        x = np.asarray(fixed, dtype=np.int64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise HotspotError(f"expected a ({self.n_channels}, n) block of samples, got shape {x.shape}",
                               ErrorCode.BAD_SAMPLES)
        if x.shape[1] > self.BLOCK:
            return np.concatenate([self._process_block(x[:, i:i + self.BLOCK])
                                   for i in range(0, x.shape[1], self.BLOCK)], axis=1)
        return self._process_block(x)

    def _process_block(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        k = self.spec.n_stages
        if n == 0:
            return np.zeros((self.n_channels, 0), dtype=np.int64)
        # rows[r, j] holds stream j's sample (r - 2 - j): two rows of history, then the block, skewed by j.
        rows = np.zeros((n + k + 2, k + 1, self.n_channels), dtype=np.int64)
        for j in range(k + 1):
            rows[j, j] = self._history[j, 1]
            rows[j + 1, j] = self._history[j, 0]
        rows[2:n + 2, 0] = x.T
        # operands[t] is rows t..t+2 seen as one (3 (k+1), n_channels) matrix: a view, no copy.
        operands = np.lib.stride_tricks.as_strided(rows, shape=(n + k, 3 * (k + 1), self.n_channels),
                                                   strides=rows.strides, writeable=False)
        mix, shift, acc = self._mix, self._shift, np.empty((k, self.n_channels), dtype=np.int64)
        for t in range(n + k - 1):
            np.matmul(mix, operands[t], out=acc)
            np.right_shift(acc, shift, out=acc)
            out = acc.astype(np.int32)  # keep the low 32 bits: q31 wraps around
            if self._q15:  # __SSAT(acc >> shift, 16) of those 32 bits
                np.minimum(out, 32767, out=out)
                np.maximum(out, -32768, out=out)
            # During the first k-1 steps, stages ahead of the data keep their history rows.
            active = k if t >= k - 1 else t + 1
            rows[t + 3, 1:active + 1] = out[:active]
        for j in range(k + 1):
            self._history[j, 0] = rows[n + 1 + j, j]
            self._history[j, 1] = rows[n + j, j]
        return rows[k + 2:n + k + 2, k].T.copy()

"""Design the device's IIR filter with SciPy and quantise it to CMSIS-DSP integer coefficients.

Host-only work: the device (``edge.fixedpoint``) just runs the integers this module produces.

Steps, for a band-pass / high-pass / low-pass Butterworth and optional notch (``scipy.signal.butter`` and
``scipy.signal.iirnotch``, second-order sections):

1. **Zero placement**: a band-pass of order N has N zeros at z = 1 and N at z = -1; every section gets one
   of each (numerator ``[1, 0, -1]``), so the *first* section already removes DC.
2. **Gain distribution** (L-infinity scaling): each section's numerator is scaled so that the cascade up to
   and including it peaks at magnitude ``gain``. No stage output exceeds ``gain`` times the input's
   amplitude for a sinusoid, and no stage wastes resolution on a tiny intermediate gain.
3. **post_shift**: the smallest shift with every coefficient / 2**post_shift representable in the q format.
4. **Rounding** to the nearest integer, CMSIS layout and signs (``a1, a2`` negated).

Scaling (the README's signal-path section explains it in full):

* q31 input: ``full_scale_uv`` = 4x the ADS1299 range (gain 24: 4 * 187 500 uV), i.e. the whole ADC range --
  DC offsets included -- sits inside [-0.25, 0.25) as CMSIS requires (two guard bits); one ADC count is
  exactly 64 q31 units. Pass-band ``gain`` 64 for filters that block DC: their output (band-limited EEG,
  no offset) has a full scale of +-11.7 mV, which puts the EEG 6 bits higher above the rounding noise.
  In-band SNR against float64 at EEG amplitudes is then > 100 dB.
* q15 input: ``full_scale_uv`` = 2**13 ADC counts (gain 24: +-183 uV) and ``gain`` 2 (output full scale
  +-92 uV). Sixteen bits cannot hold a Cyton's DC offset (tens of mV) and EEG at 60 dB SNR at once, so q15
  only suits offset-free (AC-coupled or already high-passed) input; the pipeline flags clipped channels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from scipy import signal

from edge import fixedpoint
from edge.board import ads1299_uv_per_count
from edge.errors import ArgumentParser, ErrorCode, HotspotError
from edge.fixedpoint import FixedPointFilter

#: Guard bits between the ADC's full scale and the q31 full scale.
Q31_GUARD_BITS = 2
#: ADC counts per q15 full scale (one q15 unit is a quarter count).
Q15_FULL_SCALE_COUNTS = 2 ** 13
#: Pass-band gain of DC-blocking filters, per format.
DC_BLOCKING_GAIN = {"q31": 64.0, "q15": 2.0}


def default_full_scale_uv(q_format: str, gain: int = 24) -> float:
    """The input scaling documented above, for ``q_format`` and an ADS1299 channel gain."""
    fmt = fixedpoint.q_format(q_format)
    if fmt.name == "q31":
        return ads1299_uv_per_count(gain) * 2 ** (23 + Q31_GUARD_BITS)
    return ads1299_uv_per_count(gain) * Q15_FULL_SCALE_COUNTS


def design_sos(sfreq: float, l_freq: float | None = None, h_freq: float | None = None,
               notch_freq: float | None = None, order: int = 2, notch_q: float = 30.0) -> np.ndarray:
    """Design the float filter as SciPy second-order sections.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    l_freq, h_freq : float or None
        Band edges (Hz): both give a band-pass, only ``l_freq`` a high-pass, only ``h_freq`` a low-pass.
    notch_freq : float or None
        Line frequency to notch out (50 or 60 Hz), appended as one more section.
    order : int
        Butterworth order (a band-pass of order N has 2N poles, N sections).
    notch_q : float
        Quality factor of the notch.

    Returns
    -------
    ndarray, shape (n_sections, 6)
    """
    nyquist = sfreq / 2.0
    for name, freq in (("l_freq", l_freq), ("h_freq", h_freq), ("notch_freq", notch_freq)):
        if freq is not None and not 0 < freq < nyquist:
            raise HotspotError(f"{name}={freq} Hz must lie between 0 and Nyquist ({nyquist} Hz)",
                               ErrorCode.BAD_CONFIG)
    if l_freq is not None and h_freq is not None and not l_freq < h_freq:
        raise HotspotError(f"band-pass needs l_freq < h_freq, got {l_freq} and {h_freq}", ErrorCode.BAD_CONFIG)
    if order < 1:
        raise HotspotError(f"filter order must be at least 1, got {order}", ErrorCode.BAD_CONFIG)
    sections = []
    if l_freq is not None and h_freq is not None:
        band = signal.butter(order, [l_freq, h_freq], btype="bandpass", fs=sfreq, output="sos")
        # The band-pass has `order` zeros at z = 1 and `order` at z = -1: give every section one of each,
        # so that the first section already blocks DC (a Cyton's offset is tens of millivolts).
        band[:, :3] = [1.0, 0.0, -1.0]
        sections.append(band)
    elif l_freq is not None:
        sections.append(signal.butter(order, l_freq, btype="highpass", fs=sfreq, output="sos"))
    elif h_freq is not None:
        sections.append(signal.butter(order, h_freq, btype="lowpass", fs=sfreq, output="sos"))
    if notch_freq is not None:
        b, a = signal.iirnotch(notch_freq, notch_q, fs=sfreq)
        sections.append(signal.tf2sos(b, a))
    if not sections:
        raise HotspotError("a filter needs at least one of l_freq, h_freq, notch_freq", ErrorCode.BAD_CONFIG)
    return np.vstack(sections)


def distribute_gain(sos: np.ndarray, gain: float = 1.0, n_freqs: int = 8192) -> np.ndarray:
    """Scale section numerators so every partial cascade peaks at magnitude ``gain`` (L-infinity scaling).

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Float sections.
    gain : float
        Peak magnitude of every partial cascade, the whole filter included.
    n_freqs : int
        Frequency grid size for the peak search.

    Returns
    -------
    ndarray, shape (n_sections, 6)
        The same filter times ``gain / peak(sos)``.
    """
    scaled = np.array(sos, dtype=np.float64)
    for stage in range(len(scaled)):
        peak = np.abs(signal.sosfreqz(scaled[:stage + 1], worN=n_freqs)[1]).max()
        scaled[stage, :3] *= gain / peak
    return scaled


def quantise_sos(sos: np.ndarray, q_format: str = "q31", full_scale_uv: float | None = None,
                 gain: float = 1.0, post_shift: int | None = None, description: str = "") -> FixedPointFilter:
    """Quantise SciPy second-order sections into a :class:`FixedPointFilter` (CMSIS layout and signs).

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Float sections with ``a0 == 1`` and peak gain 1; they are rescaled with :func:`distribute_gain`.
    q_format : {"q31", "q15"}
    full_scale_uv : float, optional
        Input scaling; default :func:`default_full_scale_uv`.
    gain : float
        Pass-band gain carried by the integers (see :class:`edge.fixedpoint.FixedPointFilter`).
    post_shift : int, optional
        CMSIS postShift; default the smallest that makes every coefficient representable.
    description : str
        Stored with the filter.

    Returns
    -------
    FixedPointFilter
    """
    fmt = fixedpoint.q_format(q_format)
    sos = np.asarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or not np.allclose(sos[:, 3], 1.0):
        raise HotspotError("sos must be an (n, 6) array of sections with a0 = 1", ErrorCode.BAD_CONFIG)
    sos = distribute_gain(sos, gain)
    cmsis = np.column_stack([sos[:, 0], sos[:, 1], sos[:, 2], -sos[:, 4], -sos[:, 5]])
    one = float(1 << fmt.frac_bits)

    def rounded(shift: int) -> np.ndarray:
        return np.rint(cmsis / 2.0 ** shift * one)

    if post_shift is None:
        post_shift = 0
        while np.any(rounded(post_shift) > fmt.max_int) or np.any(rounded(post_shift) < fmt.min_int):
            post_shift += 1
    ints = rounded(post_shift)
    if np.any(ints > fmt.max_int) or np.any(ints < fmt.min_int):
        raise HotspotError(f"post_shift={post_shift} is too small for these coefficients in {fmt.name}",
                           ErrorCode.BAD_CONFIG)
    ints = ints.astype(np.int64)
    if fmt.name == "q15":
        ints = np.column_stack([ints[:, :1], np.zeros(len(ints), dtype=np.int64), ints[:, 1:]])
    return FixedPointFilter(q_format=fmt.name, coeffs=tuple(int(c) for c in ints.ravel()),
                            post_shift=int(post_shift), n_stages=len(sos),
                            full_scale_uv=float(full_scale_uv or default_full_scale_uv(fmt.name)),
                            description=description, gain=float(gain))


def default_gain(q_format: str, blocks_dc: bool) -> float:
    """Pass-band gain: :data:`DC_BLOCKING_GAIN` when the first section removes DC, else 1 (DC passes)."""
    return DC_BLOCKING_GAIN[fixedpoint.q_format(q_format).name] if blocks_dc else 1.0


def design_filter(sfreq: float, l_freq: float | None = None, h_freq: float | None = None,
                  notch_freq: float | None = None, order: int = 2, notch_q: float = 30.0,
                  q_format: str = "q31", full_scale_uv: float | None = None, gain: float | None = None,
                  post_shift: int | None = None) -> FixedPointFilter:
    """Design a Butterworth (and/or notch) filter and quantise it for the device.

    Parameters are those of :func:`design_sos` and :func:`quantise_sos`; ``gain`` defaults to
    :func:`default_gain`.

    Notes
    -----
    In q15 use ``order=1`` for a high-pass below a few Hz: every stage's output rounding is fed back
    through ``1/A(z)``, which for a second-order 1 Hz pole pair (radius 0.98) adds ~34 dB of noise over
    2-45 Hz and leaves ~42 dB pass-band SNR; the first-order pole adds ~13 dB and keeps ~73 dB.

    Returns
    -------
    FixedPointFilter
    """
    parts = []
    if l_freq is not None and h_freq is not None:
        parts.append(f"Butterworth band-pass {l_freq:g}-{h_freq:g} Hz order {order}")
    elif l_freq is not None:
        parts.append(f"Butterworth high-pass {l_freq:g} Hz order {order}")
    elif h_freq is not None:
        parts.append(f"Butterworth low-pass {h_freq:g} Hz order {order}")
    if notch_freq is not None:
        parts.append(f"notch {notch_freq:g} Hz Q {notch_q:g}")
    sos = reference_sos(sfreq, l_freq, h_freq, notch_freq, order, notch_q)
    if gain is None:
        gain = default_gain(q_format, blocks_dc=l_freq is not None)
    description = " + ".join(parts) + f" at {sfreq:g} Hz, {q_format}, gain {gain:g}"
    return quantise_sos(sos, q_format, full_scale_uv, gain, post_shift, description)


def reference_sos(sfreq: float, l_freq: float | None = None, h_freq: float | None = None,
                  notch_freq: float | None = None, order: int = 2, notch_q: float = 30.0) -> np.ndarray:
    """The float64 filter (gain 1) that :func:`design_filter` quantises: the accuracy reference."""
    return distribute_gain(design_sos(sfreq, l_freq, h_freq, notch_freq, order, notch_q))


#: The default device filter: mu and beta with margin, plus the mains notch.
DEFAULT_BAND = (6.0, 35.0)


def default_filter(sfreq: float, line_freq: float = 60.0, q_format: str = "q31") -> FixedPointFilter:
    """The filter every model is trained and deployed with unless configured otherwise.

    Butterworth band-pass 6-35 Hz (order 2, two sections; it keeps the mu 8-13 Hz and beta 13-30 Hz bands
    inside its pass band) followed by a notch at the mains frequency (Q 30) when that lies below Nyquist.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz), e.g. 250 for a Cyton, 125 for Cyton+Daisy, 160 for eegmmidb.
    line_freq : float
        Mains frequency, 50 or 60 Hz.
    q_format : {"q31", "q15"}

    Returns
    -------
    FixedPointFilter
    """
    if line_freq not in (50, 60):
        raise HotspotError(f"line_freq must be 50 or 60 Hz, got {line_freq}", ErrorCode.BAD_CONFIG)
    h_freq = min(DEFAULT_BAND[1], 0.45 * sfreq)
    notch = float(line_freq) if line_freq < 0.49 * sfreq else None
    return design_filter(sfreq, DEFAULT_BAND[0], h_freq, notch, q_format=q_format)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print a designed filter as JSON (``python -m train.filter_design --sfreq 250``)."""
    parser = ArgumentParser(prog="python -m train.filter_design", description=__doc__.splitlines()[0])
    parser.add_argument("--sfreq", type=float, required=True, help="sampling rate (Hz)")
    parser.add_argument("--l-freq", type=float, help="high-pass / lower band edge (Hz)")
    parser.add_argument("--h-freq", type=float, help="low-pass / upper band edge (Hz)")
    parser.add_argument("--notch", type=float, help="line frequency to notch (Hz)")
    parser.add_argument("--order", type=int, default=2)
    parser.add_argument("--q-format", choices=("q31", "q15"), default="q31")
    args = parser.parse_args(argv)
    if args.l_freq is None and args.h_freq is None and args.notch is None:
        spec = default_filter(args.sfreq, q_format=args.q_format)
    else:
        spec = design_filter(args.sfreq, args.l_freq, args.h_freq, args.notch, args.order,
                             q_format=args.q_format)
    print(json.dumps(spec.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    from edge.errors import run_cli

    raise SystemExit(run_cli(main))

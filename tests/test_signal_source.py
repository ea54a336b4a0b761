"""edge.source: the source level's CSDs and DICS beamformer against SciPy and MNE, on a simulated subject."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from mne.time_frequency import CrossSpectralDensity
from scipy.signal import csd as scipy_csd

from train.filter_design import default_filter
from edge.errors import HotspotError
from edge.pipeline import PipelineSpec, compute_epochs
from edge.source import FILE_NAME, SourceSpace, band_csd, dics_filters, power_change_db, reference_operator, session_image
from train.head import standard_positions_head_mm
from train.simulate import load_config, simulate_subject
from train.source_space import build_source_space, grid_points, mne_forward

NINE = ("FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1")
SFREQ = 250.0
#: The largest relative difference allowed between our beamformer powers and MNE's (float64 round-off).
POWER_RTOL = 1e-9
#: The largest difference allowed between images computed from our filters and from MNE's (dB).
IMAGE_ATOL_DB = 1e-9
#: Our leadfield is µV per nAm, MNE's V per A m: source powers differ by this constant factor.
UNIT_FACTOR = 1e6


@pytest.fixture(scope="module")
def subject():
    """One simulated healthy subject (default physiology), the nine channels only, 12 trials."""
    config = load_config(None, {"cohort": {"sessions": 1}, "task": {"trials_healthy": 12},
                                "recording": {"channels": list(NINE) + ["Cz", "C4"]},
                                "artifacts": {"bad_channel_fraction": [0.0, 0.0]}})
    simulated, _ = simulate_subject(config, "healthy", 3)
    return simulated


@pytest.fixture(scope="module")
def session(subject):
    """The subject's source-level epochs: spec, good epochs' CSDs."""
    recording = subject.recordings[0]
    spec = PipelineSpec(SFREQ, NINE, "source", default_filter(SFREQ), source_space=build_source_space(NINE))
    data = recording.data[[recording.ch_names.index(name) for name in NINE]]
    epochs = compute_epochs(spec, data, recording.cue_samples("move"))
    good = [csds for csds, verdict in zip(epochs.csds, epochs.verdicts) if verdict.ok]
    assert len(good) >= 8
    return spec, epochs, good


def _mne_csd(matrix: np.ndarray) -> CrossSpectralDensity:
    upper = np.triu_indices(len(matrix))
    return CrossSpectralDensity(matrix[upper][:, None], list(NINE), frequencies=[[8.0, 13.0]], n_fft=250)


def test_band_csd_is_scipy_welch_cross_spectrum_summed_over_the_band() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 900))
    ours = band_csd(x, SFREQ, 250, [(8.0, 13.0)])[0]
    freqs, pxy = scipy_csd(x[:, None, :], x[None, :, :], fs=SFREQ, window="hann", nperseg=250, noverlap=125,
                           detrend="constant", scaling="density", axis=-1)
    in_band = (freqs >= 8.0) & (freqs < 13.0)
    density_scale = 2.0 / (SFREQ * np.sum(np.hanning(251)[:-1] ** 2))  # one-sided density of a periodic Hann
    np.testing.assert_allclose(ours * density_scale, pxy[:, :, in_band].sum(axis=-1).conj(), rtol=1e-10)


def test_source_level_matches_mne_dics_on_a_simulated_subject(session) -> None:
    spec, _, good = session
    move = np.mean([m for m, _ in good], axis=0)
    rest = np.mean([r for _, r in good], axis=0)
    operator, rank = reference_operator(spec.reference, spec.channels)
    leadfield = np.einsum("ab,bpi->api", operator, spec.source_space.leadfield)

    info = mne.create_info(list(NINE), SFREQ, "eeg")
    positions = standard_positions_head_mm(NINE)
    info.set_montage(mne.channels.make_dig_montage({k: v / 1000.0 for k, v in positions.items()},
                                                   coord_frame="head"))
    info = mne.io.RawArray(np.zeros((len(NINE), 10)), info, verbose=False).set_eeg_reference(
        projection=True, verbose=False).info  # the model's common-average reference
    forward = mne_forward(spec.source_space.points_mm, NINE)
    image = session_image(spec, [m for m, _ in good], [r for _, r in good])
    n_points = len(spec.source_space.points_mm)
    rows = spec.source_space.shape[0]
    for band in range(len(spec.bands)):
        common = (move[band] + rest[band]) / 2.0
        filters = mne.beamformer.make_dics(info, forward, _mne_csd(common), reg=spec.source_reg, pick_ori=None,
                                           weight_norm=None, depth=None, real_filter=True, inversion="matrix",
                                           verbose=False)
        ours = dics_filters(leadfield, common, spec.source_reg, rank)
        for condition in (move[band], rest[band]):
            mne_power = mne.beamformer.apply_dics_csd(_mne_csd(condition), filters, verbose=False)[0].data[:, 0]
            our_power = np.einsum("pic,cd,pid->p", ours, condition.real, ours)
            np.testing.assert_allclose(mne_power * UNIT_FACTOR, our_power, rtol=POWER_RTOL)
        mne_filters = filters["weights"][0].reshape(n_points, 3, len(NINE))
        from_mne = power_change_db(mne_filters, move[band], rest[band]).reshape(spec.source_space.shape)
        np.testing.assert_allclose(image[band * rows:(band + 1) * rows], from_mne, atol=IMAGE_ATOL_DB)
    # A healthy subject's movement desynchronises mu and beta somewhere under the grid.
    assert image.min() < -0.5


def test_power_change_is_the_most_desynchronising_orientation(session) -> None:
    spec, _, good = session
    move, rest = good[0]
    operator, rank = reference_operator(spec.reference, spec.channels)
    leadfield = np.einsum("ab,bpi->api", operator, spec.source_space.leadfield)
    filters = dics_filters(leadfield, (move[0] + rest[0]) / 2, spec.source_reg, rank)
    change = power_change_db(filters, move[0], rest[0])
    orientations = np.random.default_rng(1).normal(size=(400, 3))
    orientations /= np.linalg.norm(orientations, axis=1, keepdims=True)
    projected = np.einsum("oi,pic->poc", orientations, filters)
    ratios = (np.einsum("poc,cd,pod->po", projected, move[0].real, projected)
              / np.einsum("poc,cd,pod->po", projected, rest[0].real, projected))
    assert np.all(change <= 10 * np.log10(ratios.min(axis=1)) + 1e-9)
    assert np.all(change >= 10 * np.log10(ratios.min(axis=1)) - 0.5)  # 400 random directions come close


def test_source_space_file_round_trip_and_refusals() -> None:
    space = build_source_space(NINE)
    again = SourceSpace.from_bytes(space.to_bytes())
    assert again.sha256 == space.sha256 and again.shape == (13, 13) and again.channels == NINE
    np.testing.assert_allclose(again.leadfield, space.leadfield, rtol=1e-6)
    assert len(space.to_bytes()) < 64 * 1024  # nine channels x 169 points x 3 in float32
    with pytest.raises(HotspotError, match=FILE_NAME):
        SourceSpace.from_bytes(b"not an npz")
    with pytest.raises(HotspotError, match="do not fit"):
        SourceSpace(points_mm=space.points_mm, shape=(12, 13), channels=NINE, leadfield=space.leadfield)


def test_grid_covers_the_hand_region_of_the_left_hemisphere() -> None:
    points = grid_points()
    centre = points[len(points) // 2]
    assert np.all(points[:, 0] < 0)  # left hemisphere
    grid = points.reshape(13, 13, 3)
    # 5 mm steps: exactly along each row; down the columns 5 mm at the centre, 9 % less at the lateral edges
    np.testing.assert_allclose(np.linalg.norm(np.diff(grid, axis=1), axis=-1), 5.0, rtol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(np.diff(grid, axis=0), axis=-1), 5.0, rtol=0.1)
    assert points[0, 1] > centre[1] > points[-1, 1]  # row 0 anterior, last row posterior
    assert abs(points[0, 0]) < abs(points[12, 0])  # column 0 medial, last column lateral


def test_pattern_fit_finds_a_single_desynchronising_dipole() -> None:
    from edge.source import pattern_fit

    space = build_source_space(NINE)
    operator, rank = reference_operator("average", NINE)
    leadfield = np.einsum("ab,bpi->api", operator, space.leadfield)
    rng = np.random.default_rng(3)
    for point in rng.choice(len(space.points_mm), 5, replace=False):
        topography = leadfield[:, point] @ rng.normal(size=3)
        noise = operator @ operator.T * np.abs(topography).max() ** 2 * 0.2
        rest = noise + np.outer(topography, topography)
        move = noise + 0.4 * np.outer(topography, topography)  # a 60 % power drop at that dipole
        fit = pattern_fit(leadfield, move, rest, 0.05, rank)
        assert int(np.argmax(fit)) == point and fit[point] == pytest.approx(1.0, abs=1e-9)
        assert np.all((fit >= 0) & (fit <= 1 + 1e-12))

"""edge.estimate (prior combination, calibrated radius, cannot-localise decision) and edge.placement (no depth)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import HotspotError
from edge.estimate import (Q90_3D, Calibration, Prior, aggregate_trials, combine, confidence_text, decide,
                           gaussian_radius90, narrows_prior, prior_radius90)
from edge.placement import scalp_placement
from train.estimator import fit_radius90
from train.head import standard_positions_head_mm
from train.simulate.forward import head_sphere

PRIOR = Prior(mean_mm=[-38.0, 17.0, 103.0], sd_mm=[4.0, 4.0, 3.0])


def test_an_uninformative_prediction_returns_the_prior() -> None:
    far = np.array([-10.0, 60.0, 80.0])
    for sd in (1e3, 1e6):  # the network says it knows nothing
        point, combined = combine(PRIOR, far, np.full(3, sd), kappa=1.0)
        np.testing.assert_allclose(point, PRIOR.mean_mm, atol=0.05)
        np.testing.assert_allclose(combined, PRIOR.sd_mm, rtol=1e-3)
    estimate = decide(PRIOR, Calibration(), far, np.full(3, 1e6))
    np.testing.assert_allclose(estimate.point_mm, PRIOR.mean_mm, atol=0.05)


def test_a_confident_prediction_moves_the_estimate_by_precision() -> None:
    mean = PRIOR.mean_mm + np.array([6.0, -4.0, 2.0])
    point, sd = combine(PRIOR, mean, PRIOR.sd_mm, kappa=1.0)  # as sure as the prior: half-way
    np.testing.assert_allclose(point, PRIOR.mean_mm + np.array([3.0, -2.0, 1.0]))
    np.testing.assert_allclose(sd, PRIOR.sd_mm / np.sqrt(2))
    trusting, _ = combine(PRIOR, mean, PRIOR.sd_mm, kappa=1 / 64)  # a small kappa trusts the network
    assert np.linalg.norm(trusting - mean) < 0.2


def test_weak_desynchronisation_far_predictions_and_missing_trials_give_the_prior_with_its_radius() -> None:
    calibration = Calibration(kappa=1.0, radius90_mm=9.0, min_erd_db=1.0, gate_mm=15.0)
    near = PRIOR.mean_mm + 3.0
    assert decide(PRIOR, calibration, near, np.full(3, 3.0), erd_db=2.0).localised
    for kwargs, needle in ((dict(mean_mm=near, sd_mm=np.full(3, 3.0), erd_db=0.4), "too little"),
                           (dict(mean_mm=PRIOR.mean_mm + 20.0, sd_mm=np.full(3, 3.0), erd_db=2.0), "mm from where"),
                           (dict(mean_mm=None, sd_mm=None, reasons=["only 3 of 20 trials passed"]), "only 3")):
        estimate = decide(PRIOR, calibration, **kwargs)
        assert not estimate.localised and needle in estimate.reasons[0]
        np.testing.assert_array_equal(estimate.point_mm, PRIOR.mean_mm)
        assert estimate.radius90_mm == pytest.approx(prior_radius90(PRIOR))
        assert "could not pinpoint" in confidence_text(estimate.radius90_mm, False)


def test_the_prior_radius_is_a_90_percent_radius_for_gaussian_errors() -> None:
    rng = np.random.default_rng(0)
    sd = np.array([3.0, 3.0, 3.0])
    errors = np.linalg.norm(rng.normal(0.0, sd, (20000, 3)), axis=1)
    assert np.mean(errors <= gaussian_radius90(sd)) == pytest.approx(0.90, abs=0.01)
    assert gaussian_radius90(sd) == pytest.approx(Q90_3D * 3.0)


@pytest.mark.parametrize("spread", ["gaussian", "heavy_tailed"])
def test_the_radius_is_fitted_for_the_truth_from_noisy_labels(spread: str) -> None:
    """Held-out distances to *labels* include the label noise; the fitted radius covers 90 % of the truth."""
    rng = np.random.default_rng(1)
    n, noise = 4000, 3.5
    truth_errors = (rng.normal(0.0, 4.0, (n, 3)) if spread == "gaussian"
                    else rng.standard_t(4, (n, 3)) * np.array([6.0, 3.0, 2.0]))  # anisotropic, heavy tails
    labels_errors = truth_errors + rng.normal(0.0, noise, (n, 3))
    radius = fit_radius90(labels_errors, noise)
    assert np.mean(np.linalg.norm(truth_errors, axis=1) <= radius) == pytest.approx(0.90, abs=0.03)
    # the labels alone would over-cover the truth: the noise was taken out
    assert radius < fit_radius90(labels_errors, 0.0)


def test_a_localised_estimate_reports_the_calibrated_radius_whatever_the_network_sd() -> None:
    """The radius is the held-out distance quantile, not a multiple of the network's own SD."""
    calibration = Calibration(kappa=1.0, radius90_mm=7.5)
    near = PRIOR.mean_mm + 2.0
    radii = {decide(PRIOR, calibration, near, np.full(3, sd)).radius90_mm for sd in (0.5, 1.0, 3.0)}
    assert radii == {7.5}


def test_a_calibration_from_before_the_distance_only_radius_is_refused_with_what_to_do() -> None:
    old = {**Calibration().to_dict(), "scale": 1.3}
    del old["radius90_mm"]
    with pytest.raises(HotspotError, match="retrain the model"):
        Calibration.from_dict(old)


def test_confidence_text_follows_the_radius() -> None:
    assert "high" in confidence_text(8.0, True) and "8 mm" in confidence_text(8.0, True)
    assert "moderate" in confidence_text(15.0, True)
    assert "low" in confidence_text(30.0, True)


@pytest.mark.parametrize("data, needle", [
    ({"kappa": 0.0}, "kappa"), ({"radius90_mm": -1.0}, "radius90_mm"), ({"radius90_mm": 1e4}, "radius90_mm"), ({"min_erd_db": 99.0}, "min_erd_db"),
    ({"gate_mm": 0.0}, "gate_mm"), ({"blend": 0.5}, "peak_offset_mm"), ({"blend": 2.0}, "blend"),
    ({"physics_k": 1.5}, "physics_k"), ({"physics_gate_mm": -3.0}, "physics_gate_mm"),
    ({"mystery": 1}, "keys"),
])
def test_a_malformed_calibration_is_refused_in_one_line(data, needle) -> None:
    with pytest.raises(HotspotError, match=needle):
        Calibration.from_dict({**Calibration().to_dict(), **data})


def test_a_malformed_prior_is_refused() -> None:
    with pytest.raises(HotspotError, match="sd_mm"):
        Prior.from_dict({"mean_mm": [0, 0, 0], "sd_mm": [1, 0, 1]})
    with pytest.raises(HotspotError, match="mean_mm"):
        Prior.from_dict({"mean_mm": [0, "x", 0], "sd_mm": [1, 1, 1]})
    assert Prior.from_dict(PRIOR.to_dict()).sd_mm.tolist() == PRIOR.sd_mm.tolist()


@pytest.mark.parametrize("factor", [1.0, 1.3, 10.0, 1e6, np.inf])
def test_a_prediction_as_wide_as_the_prior_or_wider_returns_the_prior_and_says_so(factor: float) -> None:
    far_away = np.array([10.0, 40.0, 90.0])
    sd = PRIOR.sd_mm * factor
    estimate = decide(PRIOR, Calibration(), far_away, sd)
    assert not estimate.localised
    np.testing.assert_array_equal(estimate.point_mm, PRIOR.mean_mm)
    assert estimate.radius90_mm == prior_radius90(PRIOR)
    assert estimate.reasons == ["the EEG did not narrow down the population's hotspot region"]
    assert not np.any(narrows_prior(PRIOR, sd, 1.0))
    # narrower on one axis only: localised, moved along that axis only
    narrower = decide(PRIOR, Calibration(), far_away, np.where([True, False, False], 0.5 * PRIOR.sd_mm, sd))
    assert narrower.localised and narrower.point_mm[0] != PRIOR.mean_mm[0]
    if np.isinf(factor):
        np.testing.assert_array_equal(narrower.point_mm[1:], PRIOR.mean_mm[1:])
    # kappa decides how wide the network's sd counts: a large kappa makes any prediction uninformative
    assert not decide(PRIOR, Calibration(kappa=64.0), far_away, PRIOR.sd_mm / 4).localised


def test_aggregate_trials_takes_the_median_mean_and_the_median_variance() -> None:
    means = np.array([[0.0, 0.0, 0.0], [1.0, 10.0, -1.0], [2.0, 1.0, 100.0]])
    sds = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 3.0], [3.0, 9.0, 3.0]])
    mean, sd = aggregate_trials(means, sds)
    np.testing.assert_array_equal(mean, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(sd, [2.0, 2.0, 3.0])
    with pytest.raises(HotspotError, match="trial predictions must be"):
        aggregate_trials(np.zeros((0, 3)), np.zeros((0, 3)))


def test_a_placement_instruction_has_no_depth_component() -> None:
    """Points along one ray from the head centre, at any depth, get the same instruction, and the offset lies
    in the scalp's tangent plane at the electrode."""
    electrodes = standard_positions_head_mm()
    centre = head_sphere(1.0).r0_mm
    rng = np.random.default_rng(1)
    for _ in range(20):
        direction = np.array([-0.5, 0.0, 0.8]) + rng.normal(0.0, 0.2, 3)
        direction /= np.linalg.norm(direction)
        shallow = scalp_placement(centre + 75.0 * direction, electrodes, centre)
        deep = scalp_placement(centre + 55.0 * direction, electrodes, centre)
        assert (deep.electrode, deep.anterior_mm, deep.lateral_mm) == pytest.approx(
            (shallow.electrode, shallow.anterior_mm, shallow.lateral_mm))
        assert set(shallow.to_dict()) == {"electrode", "anterior_mm", "lateral_mm", "distance_mm"}
        electrode = electrodes[shallow.electrode]
        radius = np.linalg.norm(electrode - centre)
        # reconstruct the scalp point: electrode + offset in its tangent plane, at the electrode's radius
        normal = (electrode - centre) / radius
        anterior = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
        anterior /= np.linalg.norm(anterior)
        lateral = np.cross(anterior, normal)
        lateral = lateral if lateral[0] < 0 else -lateral  # away from the midline in the left hemisphere
        target = centre + direction * radius
        offset = shallow.anterior_mm * anterior + shallow.lateral_mm * lateral
        tangential = (target - electrode) - np.dot(target - electrode, normal) * normal
        np.testing.assert_allclose(offset, tangential, atol=1e-9)
        assert abs(np.dot(offset, normal)) < 1e-9
        assert shallow.distance_mm < 20.0  # 10-05 electrodes are about 10-20 mm apart


def test_the_estimate_blends_the_network_with_the_physics_baselines_own_rule() -> None:
    from edge.estimate import blended_mean, physics_estimate
    from train.baselines import PhysicsBaseline

    peak, offset = PRIOR.mean_mm + np.array([8.0, -2.0, -10.0]), np.array([1.0, 1.0, 10.0])
    baseline = PhysicsBaseline(PRIOR.mean_mm, offset, k=0.4, gate_mm=15.0)
    expected = PRIOR.mean_mm + 0.6 * (peak + offset - PRIOR.mean_mm)
    np.testing.assert_allclose(baseline.predict(peak), expected)
    np.testing.assert_allclose(physics_estimate(PRIOR.mean_mm, peak + 20.0, offset, 0.4, 15.0), PRIOR.mean_mm)
    calibration = Calibration(blend=0.25, peak_offset_mm=offset, physics_k=0.4, physics_gate_mm=15.0)
    network = PRIOR.mean_mm + 4.0
    np.testing.assert_allclose(blended_mean(PRIOR, calibration, network, peak), 0.25 * network + 0.75 * expected)
    np.testing.assert_allclose(blended_mean(PRIOR, calibration, network, None), network)  # no map: the network

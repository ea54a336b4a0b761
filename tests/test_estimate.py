"""edge.estimate (prior combination, 90 % radius, cannot-localise decision) and edge.placement (no depth)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import HotspotError
from edge.estimate import (Q90_3D, Calibration, Prior, aggregate_trials, combine, confidence_text, decide, evidence,
                           prior_radius90, radius90)
from edge.placement import scalp_placement
from train.head import standard_positions_head_mm
from train.simulate.forward import head_sphere

PRIOR = Prior(mean_mm=(-38.0, -15.0, 62.0), sd_mm=(4.0, 5.0, 3.0))


@pytest.mark.parametrize("factor", [1.0, 1.3, 10.0, 1e6, np.inf])
def test_uninformative_input_returns_the_prior(factor: float) -> None:
    # a network whose sd is as wide as the prior's (or wider) adds nothing to the prior: the prior comes back
    far_away = np.array([10.0, 40.0, 90.0])
    sd = PRIOR.sd_mm * factor
    estimate = decide(PRIOR, Calibration(), far_away, sd)
    assert not estimate.localised
    np.testing.assert_array_equal(estimate.point_mm, PRIOR.mean_mm)
    assert estimate.radius90_mm == prior_radius90(PRIOR) == pytest.approx(Q90_3D * np.sqrt(np.mean([16, 25, 9])))
    assert estimate.reasons == ["the EEG did not narrow down the population's hotspot region"]
    point, combined_sd = combine(PRIOR, far_away, sd, kappa=1.0)
    np.testing.assert_array_equal(point, PRIOR.mean_mm)
    np.testing.assert_array_equal(combined_sd, PRIOR.sd_mm)
    assert not np.any(evidence(PRIOR, sd, 1.0))
    # a network that adds something on one axis only is localised, moved on that axis only
    narrower = decide(PRIOR, Calibration(), far_away, np.where([True, False, False], 0.5 * PRIOR.sd_mm, sd))
    assert narrower.localised and narrower.point_mm[0] != PRIOR.mean_mm[0]
    np.testing.assert_array_equal(narrower.point_mm[1:], PRIOR.mean_mm[1:])


def test_combination_counts_only_the_precision_the_network_adds_beyond_the_prior() -> None:
    mean, sd = np.array([-30.0, -10.0, 70.0]), np.array([2.0, 2.5, 6.0])  # the z axis says nothing (6 > 3)
    point, combined = combine(PRIOR, mean, sd, kappa=1.0)
    evidence = np.maximum(1 / sd ** 2 - 1 / PRIOR.sd_mm ** 2, 0.0)
    weight = evidence / (1 / PRIOR.sd_mm ** 2 + evidence)
    np.testing.assert_allclose(point, PRIOR.mean_mm + weight * (mean - PRIOR.mean_mm))
    np.testing.assert_allclose(combined, np.minimum(sd, PRIOR.sd_mm))  # never wider than the prior
    assert point[2] == PRIOR.mean_mm[2] and weight[0] == pytest.approx(0.75)
    # kappa scales the network's variance: kappa -> 0 trusts the network, a large kappa returns the prior
    np.testing.assert_allclose(combine(PRIOR, mean, sd, kappa=1e-12)[0], mean, atol=1e-6)
    np.testing.assert_array_equal(combine(PRIOR, mean, sd, kappa=100.0)[0], PRIOR.mean_mm)
    np.testing.assert_allclose(combine(PRIOR, mean, np.zeros(3), kappa=1.0)[0], mean)  # sd 0: the network


def test_an_informative_prediction_is_localised_with_a_narrower_radius() -> None:
    estimate = decide(PRIOR, Calibration(kappa=1.0, scale=1.2), np.array([-30.0, -10.0, 70.0]), np.full(3, 1.5))
    assert estimate.localised and estimate.reasons == []
    assert estimate.radius90_mm < prior_radius90(PRIOR)
    assert estimate.radius90_mm == pytest.approx(1.2 * Q90_3D * 1.5)


def test_a_weak_desynchronisation_or_too_few_trials_returns_the_prior_with_its_radius() -> None:
    calibration = Calibration(min_erd_db=2.0)
    weak = decide(PRIOR, calibration, np.array([-30.0, -10.0, 70.0]), np.full(3, 1.0), erd_db=0.4)
    assert not weak.localised and weak.radius90_mm == prior_radius90(PRIOR)
    assert weak.reasons == ["the movement changed the motor rhythms too little (0.4 dB, at least 2.0 dB needed)"]
    assert decide(PRIOR, calibration, np.array([-30.0, -10.0, 70.0]), np.full(3, 1.0), erd_db=2.5).localised
    redo = decide(PRIOR, calibration, None, None, reasons=["only 2 of 20 trials passed the signal check"])
    assert not redo.localised and redo.reasons == ["only 2 of 20 trials passed the signal check"]
    np.testing.assert_array_equal(redo.point_mm, PRIOR.mean_mm)


def test_the_90_percent_radius_covers_90_percent_of_a_gaussian() -> None:
    rng = np.random.default_rng(0)
    sd = np.array([3.0, 3.0, 3.0])
    errors = np.linalg.norm(rng.normal(0.0, sd, (200_000, 3)), axis=1)
    assert np.mean(errors <= radius90(sd, 1.0)) == pytest.approx(0.90, abs=0.003)


def test_aggregate_trials_takes_the_median_mean_and_the_median_variance() -> None:
    means = np.array([[0.0, 0.0, 0.0], [1.0, 10.0, -1.0], [2.0, 1.0, 100.0]])
    sds = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 3.0], [3.0, 9.0, 3.0]])
    mean, sd = aggregate_trials(means, sds)
    np.testing.assert_array_equal(mean, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(sd, [2.0, 2.0, 3.0])
    with pytest.raises(HotspotError, match="trial predictions must be"):
        aggregate_trials(np.zeros((0, 3)), np.zeros((0, 3)))


def test_confidence_text_is_derived_from_the_radius() -> None:
    assert confidence_text(8.4, True) == ("Confidence high: the hotspot lies within 8 mm of this spot with 90 % "
                                          "probability.")
    assert confidence_text(15.0, True).startswith("Confidence moderate")
    assert confidence_text(25.0, True).startswith("Confidence low")
    assert "could not pinpoint" in confidence_text(14.2, False) and "within 14 mm" in confidence_text(14.2, False)


@pytest.mark.parametrize("data, phrase", [
    ({"mean_mm": [1, 2, 3]}, "prior must be an object"),
    ({"mean_mm": [1, 2, np.nan], "sd_mm": [1, 1, 1]}, "prior mean_mm must be three finite numbers"),
    ({"mean_mm": [1, 2, 3], "sd_mm": [1, -1, 1]}, "prior sd_mm must be three finite positive numbers"),
])
def test_a_malformed_prior_is_refused(data: dict, phrase: str) -> None:
    with pytest.raises(HotspotError, match=phrase):
        Prior.from_dict(data)


def test_calibration_round_trips_and_refuses_bad_values() -> None:
    calibration = Calibration(kappa=0.7, scale=1.3, label_noise_sd_mm=3.5, min_erd_db=1.5)
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    for bad in ({"kappa": 0.0}, {"scale": True}, {"min_erd_db": 40.0}, {"label_noise_sd_mm": -1.0}):
        with pytest.raises(HotspotError, match="calibration"):
            Calibration.from_dict({**calibration.to_dict(), **bad})


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

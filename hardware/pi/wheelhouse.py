"""The Raspberry Pi OS bookworm wheelhouse: hotspot-edge and the edge extra for aarch64, BrainFlow built here."""

from __future__ import annotations

from pathlib import Path

from hardware.deploy.wheels import PI_TARGET, Wheel, check_supplied, make_wheelhouse
from hardware.pi.brainflow import build_brainflow_wheel, vendored_source


def make_pi_wheelhouse(out: Path, repo: Path, brainflow_source: Path | None = None,
                       extra_wheels: list[Path] | None = None) -> list[Wheel]:
    """The Raspberry Pi OS bookworm wheelhouse: hotspot-edge, the edge extra for aarch64, BrainFlow built here.

    BrainFlow is cross-built from the vendored source (or taken from the cache, keyed by the
    tarball's sha256) unless a BrainFlow wheel is among ``extra_wheels``.

    Parameters
    ----------
    out : Path
        The wheelhouse folder.
    repo : Path
        This repository.
    brainflow_source : Path, optional
        BrainFlow source tarball (default: ``../shared/vendor/brainflow/brainflow-src-*.tar.gz``).
    extra_wheels : list of Path, optional
        Other wheels built elsewhere.

    Returns
    -------
    list of Wheel
        Everything a Pi installs from the wheelhouse, hotspot-edge included.
    """
    extra = list(extra_wheels or [])
    check_supplied(extra)
    if not any(wheel.name.lower().startswith("brainflow-") for wheel in extra):
        extra.append(build_brainflow_wheel(brainflow_source or vendored_source(repo)))
    return make_wheelhouse(out, PI_TARGET, extra, repo, include_project=True)

"""Releases larger than the model's input: the gate area-averages them down, and a 512 px phantom
brought down to 64 px looks like one drawn at 64 px (same anatomy, same noise)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synthgate.data.imaging import XRV_RANGE, load_xrv
from synthgate.demo import phantoms


def _area_mean(image: np.ndarray, size: int) -> np.ndarray:
    k = image.shape[0] // size
    return image.astype(np.float64).reshape(size, k, size, k).mean(axis=(1, 3))


@pytest.mark.parametrize("seed, findings, site", [(0, {"cardiomegaly"}, "site-a"), (5, {"effusion"}, "site-b"),
                                                  (9, set(), "site-a")])
def test_a_512_px_phantom_area_averaged_to_64_px_is_the_64_px_phantom(seed, findings, site):
    small = phantoms.render(seed, findings, size=64, site=site).astype(np.float64)
    down = _area_mean(phantoms.render(seed, findings, size=512, site=site), 64)
    assert np.corrcoef(small.ravel(), down.ravel())[0, 1] > 0.998
    assert np.abs(small - down).mean() < 1.5  # grey levels: the same film, drawn point-wise vs area-averaged
    # the same pixel noise: neighbouring-pixel differences (mostly noise) have the same spread
    assert np.diff(down, axis=1).std() == pytest.approx(np.diff(small, axis=1).std(), rel=0.05)


def test_noise_is_drawn_per_detector_cell_and_spread_over_the_pixels_it_covers():
    cells = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    assert phantoms._detector_noise(cells, 64) is cells  # films of at most NOISE_GRID px: exactly as before
    spread = phantoms._detector_noise(cells, 512)
    assert spread.shape == (512, 512) and phantoms.NOISE_GRID == 64
    assert (_area_mean(spread, 64) == pytest.approx(cells, abs=1e-6)) and (spread[:8, :8] == cells[0, 0]).all()
    assert phantoms._detector_noise(cells, 224).shape == (224, 224)  # any size, not only multiples


def test_the_model_input_is_the_area_mean_of_a_larger_image(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(512, 512), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(image).save(path)
    expected = _area_mean(image, 64) / 255 * (2 * XRV_RANGE) - XRV_RANGE
    assert load_xrv(path, 64)[0] == pytest.approx(expected, abs=0.05)


def test_a_smaller_image_is_interpolated_up(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(path)
    assert load_xrv(path, 64).shape == (1, 64, 64)


def test_a_finding_too_small_for_the_model_input_is_warned_about(tmp_path):
    """A 24 px mass in a 512 px release spans 3 px at a 64 px input (warned), 10.5 px at 224 px (fine)."""
    from synthgate.config.release import load_release
    from synthgate.config.toml import ConfigError
    from synthgate.reporting.gather import finding_warnings
    from tests.conftest import write_handmade_release

    release_dir = write_handmade_release(tmp_path / "handmade")
    config = release_dir / "release.toml"
    config.write_text(config.read_text().replace("width = 64\nheight = 64", "width = 512\nheight = 512")
                      .replace("min_count = 3\n", "min_count = 3\nsmallest_finding_px = 24\n"))
    release = load_release(release_dir)
    (warning,) = finding_warnings(release, 64)
    assert warning.startswith("soft tissue mass:") and "24 px as delivered" in warning and "3.0 px" in warning
    assert finding_warnings(release, 224) == []
    config.write_text(config.read_text().replace("smallest_finding_px = 24", "smallest_finding_px = 0"))
    with pytest.raises(ConfigError, match="smallest_finding_px"):
        load_release(release_dir)

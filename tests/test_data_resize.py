"""The two resizes: the run's transform (reference's bilinear) and preparation's (anti-aliased)."""
import numpy as np
import pytest

from dataloader.transforms import resize_shorter_bilinear
from dataset.resize import resize_shorter_antialiased, square


def stripes(h, w, period=4):
    """(1, h, w, 3) uint8: one white column in every `period`."""
    x = np.zeros((1, h, w, 3), np.uint8)
    x[:, :, ::period] = 255
    return x


def test_bilinear_truncates_the_longer_side_antialiased_rounds_it():
    x = np.zeros((2, 3, 7, 3), np.uint8)
    assert resize_shorter_bilinear(x, 2).shape == (2, 2, 4, 3)     # int(2 * 7 / 3) = 4
    assert resize_shorter_antialiased(x, 2).shape == (2, 2, 5, 3)  # round(4.67) = 5
    tall = np.zeros((1, 7, 3, 1), np.uint8)
    assert resize_shorter_bilinear(tall, 2).shape == (1, 4, 2, 1)


def test_shrinking_averages_only_in_the_antialiased_resize():
    x = stripes(16, 16)
    area = resize_shorter_antialiased(x, 4)  # each output pixel: one white column in four
    assert np.all(area == 64)                # 255 / 4, rounded
    bilinear = resize_shorter_bilinear(x, 4)  # samples between columns 4k+1 and 4k+2: both black
    assert np.all(bilinear == 0)


def test_unchanged_when_nothing_to_do():
    x = stripes(8, 12)
    assert resize_shorter_bilinear(x, 8) is x
    assert resize_shorter_antialiased(x, 8) is x
    assert resize_shorter_antialiased(x, 0) is x
    assert square(x, 0) is x


@pytest.mark.parametrize("shape", [(2, 30, 50, 3), (2, 50, 30, 3)])
def test_square_crops_the_centre(shape):
    x = np.zeros(shape, np.uint8)
    h, w = shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x[:, top:top + side, left:left + side] = 200  # the centre square; outside stays 0
    out = square(x, 16)
    assert out.shape == (2, 16, 16, 3) and np.all(out == 200)

"""A generated, unlabelled corpus of 8x8 glyph images in the digits' own format.

The 94 printable ASCII characters (letters, digits, punctuation) are drawn once with the
font that ships inside Pillow, then each example is one character under a random affine
distortion (rotation, scale, shear, shift) and stroke width, binarised on a 32x32 canvas and
reduced to 8x8 by counting the set pixels of each 4x4 block (values 0-16): the preprocessing
of the UCI handwritten digits that scikit-learn's `digits` come from. The glyphs are printed,
not handwritten, and 10 of the 94 characters are digits; nothing is downloaded, and the same
seed gives the same images.
"""

from __future__ import annotations

import math
import string

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

CHARACTERS = string.digits + string.ascii_letters + string.punctuation
_CANVAS = 32
_CHUNK = 8192


def _templates() -> torch.Tensor:
    """(94, 1, 32, 32) float in [0, 1]: each character scaled to fill a 28-pixel box."""
    font = ImageFont.load_default(size=64)
    out = []
    for char in CHARACTERS:
        image = Image.new("L", (96, 96))
        ImageDraw.Draw(image).text((16, 8), char, fill=255, font=font)
        box = image.getbbox()
        glyph = image.crop(box)
        scale = 28 / max(glyph.size)
        width, height = (max(1, round(s * scale)) for s in glyph.size)
        glyph = glyph.resize((width, height), Image.Resampling.BILINEAR)
        canvas = Image.new("L", (_CANVAS, _CANVAS))
        canvas.paste(glyph, ((_CANVAS - width) // 2, (_CANVAS - height) // 2))
        out.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0))
    return torch.stack(out)[:, None]


def _affine(count: int, gen: torch.Generator) -> torch.Tensor:
    """(count, 2, 3) random affine maps: rotation +-15 deg, scale 0.75-1.15 per axis, shear,
    shift +-10%."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=gen)

    angle = uniform(-math.pi / 12, math.pi / 12)
    sx, sy = uniform(0.75, 1.15), uniform(0.75, 1.15)
    shear = uniform(-0.3, 0.3)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(count, 2, 3)
    # grid_sample maps output to input coordinates: the inverse scale enlarges the glyph.
    theta[:, 0, 0], theta[:, 0, 1] = cos / sx, (-sin + shear) / sx
    theta[:, 1, 0], theta[:, 1, 1] = sin / sy, cos / sy
    theta[:, :, 2] = uniform(-0.1, 0.1).unsqueeze(1) * torch.ones(1, 2)
    theta[:, 1, 2] = uniform(-0.1, 0.1)
    return theta


def generate_glyphs(count: int, seed: int = 0) -> np.ndarray:
    """`count` glyph images, (count, 1, 8, 8) float32 with values 0-16, like the digits."""
    templates = _templates()
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, count, _CHUNK):
        n = min(_CHUNK, count - start)
        which = torch.randint(len(templates), (n,), generator=gen)
        grid = F.affine_grid(_affine(n, gen), [n, 1, _CANVAS, _CANVAS], align_corners=False)
        ink = F.grid_sample(templates[which], grid, align_corners=False)
        thick = torch.rand(n, generator=gen) < 0.5  # a wider pen for half of them
        ink[thick] = F.max_pool2d(ink[thick], 3, 1, 1)
        bits = (ink > 0.5).float()
        parts.append(F.avg_pool2d(bits, 4) * 16)
    return torch.cat(parts).round().numpy().astype(np.float32)

"""Expected values for test/io/image.test.ts, computed with real Pillow:
- Image.resize(BICUBIC) on a tiny RGB image (the "input" and "cases" of pil_resize.json);
- a small CMYK JPEG written by Pillow (images/cmyk.jpg) and what Image.open(...).convert('RGB')
  makes of it ("cmyk"), since sharp cannot write chosen CMYK samples and PIL's CMYK -> RGB
  conversion is what the processor reproduces.

Made with Debian's python3-pil (Pillow 9.4.0), from the repository root:
    /usr/bin/python3 test/data/make_pil_resize.py > test/data/pil_resize.json
The project never runs Python; this script documents where those files came from.
"""
import json
import random

import PIL
from PIL import Image

WIDTH, HEIGHT = 11, 7
rng = random.Random(20240607)
pixels = [rng.randrange(256) for _ in range(WIDTH * HEIGHT * 3)]
# Hard black/white edges make the cubic overshoot, so the clipping to [0, 255] is exercised too.
for y in range(HEIGHT):
    for c in range(3):
        pixels[(y * WIDTH + 4) * 3 + c] = 255
        pixels[(y * WIDTH + 5) * 3 + c] = 0
image = Image.frombytes("RGB", (WIDTH, HEIGHT), bytes(pixels))

# Down both ways, up both ways, down one way and up the other, one axis unchanged, to a point.
SIZES = [(5, 3), (17, 13), (4, 12), (11, 20), (1, 1)]
cases = [
    {"width": w, "height": h, "data": list(image.resize((w, h), Image.BICUBIC).tobytes())}
    for (w, h) in SIZES
]

# Random CMYK samples, saved by Pillow (Adobe-inverted CMYK JPEG, as it and Photoshop write them).
CMYK_WIDTH, CMYK_HEIGHT = 16, 8
cmyk = Image.frombytes("CMYK", (CMYK_WIDTH, CMYK_HEIGHT), bytes(rng.randrange(256) for _ in range(CMYK_WIDTH * CMYK_HEIGHT * 4)))
cmyk.save("test/data/images/cmyk.jpg", quality=90)
cmyk_rgb = Image.open("test/data/images/cmyk.jpg").convert("RGB")


print(json.dumps({
    "pillow": PIL.__version__,
    "input": {"width": WIDTH, "height": HEIGHT, "data": pixels},
    "cases": cases,
    "cmyk": {"file": "images/cmyk.jpg", "width": CMYK_WIDTH, "height": CMYK_HEIGHT, "rgb": list(cmyk_rgb.tobytes())},
}))

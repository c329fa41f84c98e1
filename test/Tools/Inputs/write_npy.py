"""Writes a little-endian float32 .npy file: write_npy.py OUT SHAPE VALUES.

SHAPE is comma-separated dims ("4,4"), VALUES comma-separated numbers in
row-major order (spaces ignored). For hand-made test inputs.
"""
import struct
import sys

out, shape_text, values_text = sys.argv[1:4]
shape = tuple(int(d) for d in shape_text.split(","))
values = [float(v) for v in values_text.replace(" ", "").split(",")]
count = 1
for d in shape:
    count *= d
if len(values) != count:
    sys.exit("write_npy.py: %d values for shape %s" % (len(values), shape))
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
    "".join("%d," % d for d in shape) if len(shape) == 1 else ", ".join(str(d) for d in shape))
header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
with open(out, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%df" % count, *values))

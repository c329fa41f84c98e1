#!/usr/bin/env python3
"""Prints the first row at which two float32 .npy files of the same shape
[rows, cols] differ bit for bit ("first differing row: R"), or "none"."""
import struct
import sys


def rows(path):
    data = open(path, "rb").read()
    assert data[:6] == b"\x93NUMPY" and data[6] == 1, path + ": not .npy v1"
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_len].decode()
    assert "'<f4'" in header, path + ": not float32"
    shape = header[header.index("(") + 1:header.index(")")].split(",")
    cols = int(shape[1])
    body = data[10 + header_len:]
    return [body[i:i + 4 * cols] for i in range(0, len(body), 4 * cols)]


a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == len(b), "the files have different row counts"
diff = [i for i in range(len(a)) if a[i] != b[i]]
print("first differing row:", diff[0] if diff else "none")

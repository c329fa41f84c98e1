"""Overwrites one f32 tensor of a .safetensors file in place with a value.

poison_tensor.py FILE TENSOR VALUE (VALUE: a float, e.g. nan or inf). For
tests of what the tools do with weights that are not finite.
"""
import json
import struct
import sys

path, name, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(path, "r+b") as f:
    size = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(size))
    entry = header[name]
    if entry["dtype"] != "F32":
        sys.exit("poison_tensor.py: %s is %s, not F32" % (name, entry["dtype"]))
    begin, end = entry["data_offsets"]
    f.seek(8 + size + begin)
    f.write(struct.pack("<f", value) * ((end - begin) // 4))

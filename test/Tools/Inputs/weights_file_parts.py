"""Checks how jamba-compile --weights-file-size cut an artifact's weights.

usage: weights_file_parts.py ARTIFACT_DIR MAX_BYTES

Reads ARTIFACT_DIR/manifest.json and checks, from the weights' dtypes and
shapes alone:
- each weights file holds one rank's weights, named weights/rank-R.safetensors
  when the rank has one file, else weights/rank-R-part-P.safetensors, P from 0;
- the parts of a rank hold its weights in name order, part after part;
- a part holds at most MAX_BYTES of tensor data, unless it is one tensor;
- a part is cut where the next tensor would not fit (it could not take the
  next part's first tensor);
- every rank is cut at the same tensors.
Prints one line per rank ("rank R: P files") and "ok", or the first broken
rule and exits 1.
"""

import json
import re
import sys

SIZES = {"F32": 4, "BF16": 2, "I8": 1, "I64": 8}


def fail(message):
    print("weights_file_parts.py: " + message)
    sys.exit(1)


def main():
    directory, max_bytes = sys.argv[1], int(sys.argv[2])
    manifest = json.load(open(directory + "/manifest.json"))
    files = {}  # rank -> part -> [(name, bytes)]
    for w in manifest["weights"]:
        match = re.fullmatch(r"weights/rank-(\d+)(?:-part-(\d+))?\.safetensors",
                             w["file"])
        if not match:
            fail("unexpected weights file name " + w["file"])
        rank, part = int(match.group(1)), int(match.group(2) or -1)
        if rank != w["rank"]:
            fail("%s holds a weight of rank %d" % (w["file"], w["rank"]))
        size = SIZES[w["dtype"]]
        for d in w["shape"]:
            size *= d
        files.setdefault(rank, {}).setdefault(part, []).append(
            (w["name"], size))
    cuts = None
    for rank in sorted(files):
        parts = files[rank]
        keys = sorted(parts)
        if keys != ([-1] if len(keys) == 1 else list(range(len(keys)))):
            fail("rank %d has files %s" % (rank, keys))
        names = [n for k in keys for n, _ in parts[k]]
        if names != sorted(names):
            fail("rank %d's parts are not in name order" % rank)
        for i, k in enumerate(keys):
            total = sum(size for _, size in parts[k])
            if total > max_bytes and len(parts[k]) > 1:
                fail("rank %d part %d holds %d bytes in %d tensors" %
                     (rank, k, total, len(parts[k])))
            if i + 1 < len(keys) and total + parts[keys[i + 1]][0][1] <= max_bytes:
                fail("rank %d part %d (%d bytes) could take %s" %
                     (rank, k, total, parts[keys[i + 1]][0][0]))
        rank_cuts = [[n for n, _ in parts[k]] for k in keys]
        if cuts is not None and rank_cuts != cuts:
            fail("rank %d is cut at other tensors than rank 0" % rank)
        cuts = rank_cuts
        print("rank %d: %d files" % (rank, len(keys)))
    print("ok")


main()

//===- Npy.h - NumPy .npy files ---------------------------------*- C++ -*-===//
//
// Part of jamba-mlir. Writes (and reads back, for tests) float32 arrays in the
// NumPy .npy format, version 1.0: what the tools' --logits-out produce.
// Standard library only: the runtime uses it too.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_NPY_H
#define JAMBA_CHECKPOINT_NPY_H

#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace jamba {
namespace ckpt {

/// Writes `values` (row-major, product(shape) of them) as a little-endian
/// float32 .npy file at `path`.
Status writeNpyF32(const std::string &path, const std::vector<int64_t> &shape,
                   const std::vector<float> &values);

/// Reads a little-endian float32, C-order .npy file written by writeNpyF32 or
/// NumPy. Anything else is an error naming the file.
Status readNpyF32(const std::string &path, std::vector<int64_t> &shape,
                  std::vector<float> &values);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_NPY_H

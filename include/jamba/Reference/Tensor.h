//===- Tensor.h - Dense tensors of the reference interpreter ----*- C++ -*-===//
//
// Part of jamba-mlir. A deliberately plain row-major tensor: a shape and a
// vector of values. Integer tensors (token ids, expert indices, int8 weights)
// hold their exact values in the same element type.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_REFERENCE_TENSOR_H
#define JAMBA_REFERENCE_TENSOR_H

#include <cassert>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace jamba::ref {

template <typename T> struct Tensor {
  std::vector<int64_t> shape;
  std::vector<T> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape, T fill = T(0))
      : shape(std::move(shape)), data(product(this->shape), fill) {}
  Tensor(std::vector<int64_t> shape, std::vector<T> data)
      : shape(std::move(shape)), data(std::move(data)) {
    assert(static_cast<int64_t>(this->data.size()) == product(this->shape));
  }

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  int64_t dim(int64_t i) const { return shape[i < 0 ? i + rank() : i]; }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }

  T &operator[](int64_t i) { return data[i]; }
  const T &operator[](int64_t i) const { return data[i]; }

  /// The number of elements of `shape`.
  static int64_t product(const std::vector<int64_t> &shape) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

/// "[2, 3, 4]".
std::string formatShape(const std::vector<int64_t> &shape);

} // namespace jamba::ref

#endif // JAMBA_REFERENCE_TENSOR_H

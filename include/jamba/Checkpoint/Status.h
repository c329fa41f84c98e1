//===- Status.h - Error values for the checkpoint library ------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The checkpoint library is shared by the compiler and the MLIR-free runtime
// and may be built with -fno-exceptions, so failures travel as values: a
// `Status` is either OK or carries a human-readable message, and a
// `StatusOr<T>` holds either a `T` or a failed `Status`.
//
// Messages always name the file and the field or tensor at fault, e.g.
//   config.json: key 'hidden_size': expected a positive integer, got string
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_STATUS_H
#define JAMBA_CHECKPOINT_STATUS_H

#include <cassert>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

namespace jamba {
namespace ckpt {

/// The result of an operation that produces no value: success, or an error
/// with a message. A default-constructed Status is success.
class [[nodiscard]] Status {
public:
  Status() = default;

  /// Returns a successful status.
  static Status success() { return Status(); }

  /// Returns a failed status carrying `message`. An empty message is replaced
  /// by "unknown error" so that a failure can never be mistaken for success.
  static Status error(std::string message) {
    Status s;
    s.failed = true;
    s.msg = message.empty() ? std::string("unknown error") : std::move(message);
    return s;
  }

  bool ok() const { return !failed; }

  /// The error message; empty for a successful status.
  const std::string &message() const { return msg; }

private:
  bool failed = false;
  std::string msg;
};

namespace detail {
inline void appendAll(std::ostringstream &) {}
template <class First, class... Rest>
void appendAll(std::ostringstream &os, First &&first, Rest &&...rest) {
  os << std::forward<First>(first);
  appendAll(os, std::forward<Rest>(rest)...);
}
} // namespace detail

/// Concatenates the stream representations of `parts` into one string.
template <class... Parts> std::string concat(Parts &&...parts) {
  std::ostringstream os;
  detail::appendAll(os, std::forward<Parts>(parts)...);
  return os.str();
}

/// Builds a failed Status whose message is the concatenation of `parts`:
///   return makeError(path, ": tensor '", name, "' not found");
template <class... Parts> Status makeError(Parts &&...parts) {
  return Status::error(concat(std::forward<Parts>(parts)...));
}

/// Either a value of type `T` or a failed Status. Constructing from a
/// successful Status is a programming error (asserted in debug builds; in
/// release builds it is turned into an "unknown error" failure).
template <class T> class [[nodiscard]] StatusOr {
public:
  StatusOr(const T &value) : val(value) {}
  StatusOr(T &&value) : val(std::move(value)) {}
  StatusOr(Status status) : st(std::move(status)) {
    assert(!st.ok() && "StatusOr constructed from a successful Status");
    if (st.ok())
      st = Status::error("internal error: StatusOr built from success");
  }
  /// Allows `return std::make_unique<Derived>()` into StatusOr<unique_ptr<B>>.
  template <class U, class = std::enable_if_t<
                         std::is_constructible<T, U &&>::value &&
                         !std::is_same<std::decay_t<U>, Status>::value &&
                         !std::is_same<std::decay_t<U>, T>::value>>
  StatusOr(U &&value) : val(T(std::forward<U>(value))) {}

  bool ok() const { return val.has_value(); }

  /// The status: success when a value is held.
  const Status &status() const { return st; }

  /// The held value. Precondition: ok().
  T &value() & {
    assert(ok() && "value() on a failed StatusOr");
    return *val;
  }
  const T &value() const & {
    assert(ok() && "value() on a failed StatusOr");
    return *val;
  }
  T &&value() && {
    assert(ok() && "value() on a failed StatusOr");
    return std::move(*val);
  }

  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T &&operator*() && { return std::move(*this).value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }

private:
  std::optional<T> val;
  Status st;
};

} // namespace ckpt
} // namespace jamba

/// Evaluates `expr` (a Status) and returns it from the enclosing function if
/// it failed.
#define JAMBA_CKPT_RETURN_IF_ERROR(expr)                                       \
  do {                                                                         \
    ::jamba::ckpt::Status jambaCkptStatus_ = (expr);                           \
    if (!jambaCkptStatus_.ok())                                                \
      return jambaCkptStatus_;                                                 \
  } while (false)

#endif // JAMBA_CHECKPOINT_STATUS_H

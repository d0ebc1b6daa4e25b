// Status and Result<T>: errors as values, shaped like std::expected so a move to C++23 is a
// rename. Each code tells the caller what to do next (retry, re-plan, ask an operator).
// Thread-safety: values; no shared state.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace outpost {

enum class Code {
  kOk = 0,
  kNotFound,            // the thing asked for does not exist
  kInvalidArgument,     // bad config, CLI input, malformed name or path
  kCorruption,          // hash mismatch, truncated pack, malformed file: never store these bytes
  kVerificationFailed,  // bad signature, expired or rolled-back metadata: never retry same bytes
  kResourceExhausted,   // disk full, LMDB map full, over budget
  kUnavailable,         // transient: retry with backoff
  kAborted,             // conflict: re-plan and try again
  kFailedPrecondition,  // an operator must act (no subscription, key permissions, ...)
  kInternal,            // a bug
  kCancelled,           // stopped on request (Ctrl-C, SIGTERM, a daemon shutting down)
};

// Short lowercase name of a code, e.g. "corruption".
const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status VerificationFailed(std::string m) {
    return {Code::kVerificationFailed, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {Code::kResourceExhausted, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {Code::kFailedPrecondition, std::move(m)};
  }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsVerificationFailed() const { return code_ == Code::kVerificationFailed; }
  bool IsResourceExhausted() const { return code_ == Code::kResourceExhausted; }
  bool IsCancelled() const { return code_ == Code::kCancelled; }

  // The same code with context in front: "importing pack X: <message>".
  Status With(const std::string& context) const {
    if (ok()) return *this;
    return {code_, context + ": " + message_};
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or an error Status. Access to value() on an error is a bug (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  const Status& error() const {
    assert(!ok());
    return std::get<Status>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace outpost

#define OUTPOST_CONCAT_INNER(a, b) a##b
#define OUTPOST_CONCAT(a, b) OUTPOST_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when it is an error.
#define OUTPOST_RETURN_IF_ERROR(expr) \
  OUTPOST_RETURN_IF_ERROR_IMPL(OUTPOST_CONCAT(outpost_status_, __LINE__), expr)
#define OUTPOST_RETURN_IF_ERROR_IMPL(tmp, expr) \
  do {                                          \
    ::outpost::Status tmp = (expr);             \
    if (!tmp.ok()) return tmp;                  \
  } while (false)

// `OUTPOST_ASSIGN_OR_RETURN(auto x, f());` declares x from a Result, or returns its error.
#define OUTPOST_ASSIGN_OR_RETURN(lhs, expr) \
  OUTPOST_ASSIGN_OR_RETURN_IMPL(OUTPOST_CONCAT(outpost_result_, __LINE__), lhs, expr)
#define OUTPOST_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.error();                  \
  lhs = std::move(tmp).value()

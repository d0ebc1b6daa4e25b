#include "outpost/base/status.h"

namespace outpost {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kCorruption: return "corruption";
    case Code::kVerificationFailed: return "verification failed";
    case Code::kResourceExhausted: return "resource exhausted";
    case Code::kUnavailable: return "unavailable";
    case Code::kAborted: return "aborted";
    case Code::kFailedPrecondition: return "failed precondition";
    case Code::kInternal: return "internal error";
    case Code::kCancelled: return "cancelled";
  }
  return "unknown";
}

}  // namespace outpost

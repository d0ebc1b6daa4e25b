#include "outpost/base/retry.h"

namespace outpost {

RetryClass retry_class(const Status& status) {
  switch (status.code()) {
    case Code::kOk: return RetryClass::kNone;
    case Code::kAborted:
    case Code::kCorruption:
    case Code::kNotFound: return RetryClass::kNow;
    case Code::kUnavailable: return RetryClass::kLater;
    case Code::kFailedPrecondition:
    case Code::kResourceExhausted: return RetryClass::kOperator;
    case Code::kVerificationFailed:
    case Code::kInvalidArgument:
    case Code::kInternal:
    case Code::kCancelled: return RetryClass::kGiveUp;
  }
  return RetryClass::kGiveUp;
}

const char* retry_class_name(RetryClass c) {
  switch (c) {
    case RetryClass::kNone: return "ok";
    case RetryClass::kNow: return "retry now";
    case RetryClass::kLater: return "retry later";
    case RetryClass::kOperator: return "needs an operator";
    case RetryClass::kGiveUp: return "give up";
  }
  return "give up";
}

}  // namespace outpost

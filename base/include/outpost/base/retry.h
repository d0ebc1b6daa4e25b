// What a caller should do about a failed Status: the one question a sync loop, a route or
// mirror fallback, the scheduler and the CLI's exit code all ask. Derived from the code alone,
// so every layer that picks the right code gets the right retry behaviour.
#pragma once

#include "outpost/base/status.h"

namespace outpost {

enum class RetryClass {
  kNone,      // not an error
  kNow,       // another way may work at once: re-plan, another route, another mirror
              // (kAborted, kCorruption, kNotFound: the bytes or file were bad or absent here)
  kLater,     // transient: the same request after a backoff (kUnavailable)
  kOperator,  // nothing changes until a person acts: a certificate, access rules, a full
              // disk, a permission (kFailedPrecondition, kResourceExhausted)
  kGiveUp,    // never again with the same input: a bad signature, expired or rolled-back
              // metadata, a usage error, a bug, or a stop request (kVerificationFailed,
              // kInvalidArgument, kInternal, kCancelled)
};

RetryClass retry_class(const Status& status);
// "retry now", "retry later", "needs an operator", "give up", "ok".
const char* retry_class_name(RetryClass c);

}  // namespace outpost

// Runs another program and waits for it: the daemon's worker processes (docs/daemon.md,
// "Worker processes"). The child gets `input` on its stdin; what it writes to stdout and stderr
// comes back (each cut at max_output bytes). stop() is asked every 100 ms while it runs: when it
// says yes, the child gets SIGTERM, and SIGKILL 5 s later if it is still there.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "outpost/base/status.h"

namespace outpost {

struct ChildResult {
  int exit_code = -1;  // -1: ended by a signal (or its end could not be learnt)
  int signal = 0;      // the signal that ended it (0: it exited)
  std::string out, err;
  // Why it failed, in one line: the last line it wrote to stderr (without an "outpost: error: "
  // prefix), else "<who> was ended by signal N" or "<who> failed (exit code N)".
  std::string failure(const std::string& who) const;
};

struct ChildOptions {
  std::string input;  // written to its stdin, which is then closed
  std::size_t max_output = 1 << 20;
  std::function<bool()> stop;  // may be empty
};

// kUnavailable when the program cannot be started (no process to be had, not executable).
Result<ChildResult> run_child(const std::vector<std::string>& argv, const ChildOptions& options);

}  // namespace outpost

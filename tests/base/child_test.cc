#include "outpost/base/child.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

using outpost::ChildOptions;
using outpost::run_child;

TEST_CASE("a worker process gets its input on stdin and gives back stdout, stderr and its code",
          "[base][child]") {
  ChildOptions o;
  o.input = std::string(300'000, 'x') + "\n";  // more than a pipe holds at once
  auto r = run_child({"/bin/sh", "-c", "wc -c; echo oops >&2; exit 3"}, o);
  REQUIRE(r.ok());
  CHECK(r->out == "300001\n");
  CHECK(r->err == "oops\n");
  CHECK(r->exit_code == 3);
  CHECK(r->signal == 0);
  CHECK(r->failure("the worker") == "oops");
  r = run_child({"/bin/sh", "-c", "echo 'outpost: error: disk full' >&2; echo >&2; exit 5"}, {});
  REQUIRE(r.ok());
  CHECK(r->failure("the worker") == "disk full");
  r = run_child({"/bin/sh", "-c", "exit 4"}, {});
  REQUIRE(r.ok());
  CHECK(r->failure("the worker") == "the worker failed (exit code 4)");
}

TEST_CASE("a worker's output is cut at max_output, and one that ignores its stdin still ends",
          "[base][child]") {
  ChildOptions o;
  o.max_output = 10;
  o.input = std::string(1 << 20, 'y');  // never read: the writer must not block or die of SIGPIPE
  auto r = run_child({"/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' z"}, o);
  REQUIRE(r.ok());
  CHECK(r->out == std::string(10, 'z'));
  CHECK(r->exit_code == 0);
}

TEST_CASE("a stop request ends a worker with SIGTERM, and one that ignores it with SIGKILL",
          "[base][child]") {
  ChildOptions o;
  const auto start = std::chrono::steady_clock::now();
  o.stop = [&] {
    return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(200);
  };
  auto r = run_child({"/bin/sleep", "30"}, o);
  REQUIRE(r.ok());
  CHECK(r->signal == SIGTERM);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));

  // The stop comes once the shell has set its trap (it then makes a file): a loaded machine
  // may take longer than any fixed delay to get there.
  const std::string ready =
      (std::filesystem::temp_directory_path() / ("outpost-trap-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove(ready);
  const auto start2 = std::chrono::steady_clock::now();
  o.stop = [&] { return std::filesystem::exists(ready); };
  r = run_child({"/bin/sh", "-c", "trap '' TERM; : > '" + ready + "'; while :; do sleep 0.1; done"},
                o);
  std::filesystem::remove(ready);
  REQUIRE(r.ok());
  CHECK(r->signal == SIGKILL);
  const auto took = std::chrono::steady_clock::now() - start2;
  CHECK(took >= std::chrono::seconds(5));
  CHECK(took < std::chrono::seconds(10));
}

TEST_CASE("a worker that ends while what it started still holds its output is not waited for",
          "[base][child]") {
  const auto start = std::chrono::steady_clock::now();
  auto r = run_child({"/bin/sh", "-c", "echo answer; sleep 8 & exit 0"}, {});
  REQUIRE(r.ok());
  CHECK(r->out == "answer\n");
  CHECK(r->exit_code == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
}

TEST_CASE("a worker whose end cannot be learnt (SIGCHLD ignored) is not taken for a success",
          "[base][child]") {
  struct sigaction ignore {
  }, was{};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGCHLD, &ignore, &was) == 0);
  auto r = run_child({"/bin/true"}, {});
  ::sigaction(SIGCHLD, &was, nullptr);
  REQUIRE(r.ok());
  CHECK(r->exit_code != 0);
}

TEST_CASE("a program that cannot be started is one clear error", "[base][child]") {
  auto r = run_child({"/nonexistent/outpost-worker"}, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == outpost::Code::kUnavailable);
  CHECK(r.error().message().find("/nonexistent/outpost-worker") != std::string::npos);
}

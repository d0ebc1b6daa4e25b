// Test helpers: temporary directories that clean up, running the outpost binary, file I/O.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"

namespace outpost::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the outpost binary with args (no shell), with extra environment entries "K=V".
RunResult run_outpost(const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {});
// As run_outpost, in the working directory cwd (a relative path given to outpost resolves
// there).
RunResult run_outpost_in(const std::string& cwd, const std::vector<std::string>& args,
                         const std::vector<std::string>& env = {});
// Runs any program with args (no shell), in cwd when not empty.
RunResult run_program(const std::vector<std::string>& argv,
                      const std::vector<std::string>& env = {}, const std::string& cwd = "");

// A program started without waiting for it (no shell; stdin, stdout and stderr on
// /dev/null), so a test can signal it mid-run. The destructor kills (SIGKILL) and reaps it if
// it is still running, so no test leaves a process behind.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  int pid() const { return pid_; }
  // Sends sig (e.g. SIGKILL) if the child has not been reaped yet.
  void signal(int sig);
  // Waits for the child to end; returns its exit code, or 128 + signal number.
  int wait();

 private:
  int pid_ = -1;
  int status_ = -1;  // exit code once reaped
};
// Starts the outpost binary with args, as Child.
std::unique_ptr<Child> start_outpost(const std::vector<std::string>& args,
                                     const std::vector<std::string>& env = {});

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);
Bytes read_all(const std::string& path);
void write_all(const std::string& path, ByteView data);
// mkdir -p
void make_dirs(const std::string& path);
// Recursively copies a directory tree.
void copy_tree(const std::string& from, const std::string& to);
// A tmpfs of a given size ("3m") mounted on dir, unmounted on destruction: a real small
// disk for disk-full tests. Declare it after the TempDir holding dir. Needs root (CI runs as
// root); mounted() says whether it worked and why() why not.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const std::string& size);
  ~SmallDisk();
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  // Remounts with a new size (e.g. to make room again).
  bool resize(const std::string& size);
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }

 private:
  std::string dir_;
  std::string why_;
  bool mounted_ = false;
};

// Full path of a program found on $PATH or in extra_dirs (run_program() execs without a PATH
// search), or "" when there is none.
std::string find_program(const std::string& name, const std::vector<std::string>& extra_dirs = {});

// Deterministic pseudo-random bytes (xorshift) for generated content.
Bytes random_bytes(std::size_t n, std::uint64_t seed);
// Path to the project's samples/ folder.
std::string samples_dir();

}  // namespace outpost::test

#include "support/test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace outpost::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/outpost-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  // mkdtemp makes it 0700; a web server's unprivileged workers (tests/support/nginx.h) must be
  // able to traverse it to serve a repository inside.
  if (::chmod(tmpl.c_str(), 0755) != 0) throw std::runtime_error("chmod of a temp dir failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {
std::vector<std::string> environment_with(const std::vector<std::string>& env);
}  // namespace

RunResult run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      const std::string& cwd) {
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  const std::vector<std::string> envs = environment_with(env);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    // The program starts with stdin, stdout and stderr only, as from a shell: not with what
    // the test runner inherited (a test of running out of descriptors counts on it).
    ::close_range(3, ~0U, 0);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(127);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  RunResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

namespace {

// A variable given in `env` replaces the inherited one of the same name: a child's getenv()
// finds the first, so appending would leave ASAN_OPTIONS (set by ctest) in force.
std::vector<std::string> environment_with(const std::vector<std::string>& env) {
  auto name = [](const std::string& e) { return e.substr(0, e.find('=')); };
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    bool replaced = false;
    for (const auto& x : env) replaced = replaced || name(x) == name(kv);
    if (!replaced) envs.push_back(kv);
  }
  for (const auto& e : env) envs.push_back(e);
  return envs;
}

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<std::string> envs = environment_with(env);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  pid_ = pid;
}

Child::~Child() {
  signal(SIGKILL);
  wait();
}

void Child::signal(int sig) {
  if (pid_ > 0 && status_ < 0) ::kill(pid_, sig);
}

int Child::wait() {
  if (pid_ <= 0) return -1;
  if (status_ < 0) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) return -1;
    }
    status_ = decode_status(status);
  }
  return status_;
}

std::unique_ptr<Child> start_outpost(const std::vector<std::string>& args,
                                     const std::vector<std::string>& env) {
  std::vector<std::string> argv{OUTPOST_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<Child>(argv, env);
}

RunResult run_outpost(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv{OUTPOST_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, env);
}

RunResult run_outpost_in(const std::string& cwd, const std::vector<std::string>& args,
                         const std::vector<std::string>& env) {
  std::vector<std::string> argv{OUTPOST_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, env, cwd);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

Bytes read_all(const std::string& path) {
  std::string s = read_text(path);
  return Bytes(s.begin(), s.end());
}

void write_all(const std::string& path, ByteView data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

void make_dirs(const std::string& path) { fs::create_directories(path); }

void copy_tree(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

std::string find_program(const std::string& name, const std::vector<std::string>& extra) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : extra) dirs += ":" + e;
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  Bytes out(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<std::uint8_t>(x >> 32);
  }
  return out;
}

SmallDisk::SmallDisk(const std::string& dir, const std::string& size) : dir_(dir) {
  make_dirs(dir);
  if (::geteuid() != 0) {
    why_ = "not running as root";
    return;
  }
  const std::string data = "size=" + size + ",mode=0700";
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, data.c_str()) != 0) {
    why_ = std::string("mount failed: ") + std::strerror(errno);
    return;
  }
  mounted_ = true;
}

SmallDisk::~SmallDisk() {
  if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
}

bool SmallDisk::resize(const std::string& size) {
  const std::string data = "size=" + size + ",mode=0700";
  return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, data.c_str()) == 0;
}

std::string samples_dir() { return std::string(OUTPOST_SOURCE_DIR) + "/samples"; }

}  // namespace outpost::test

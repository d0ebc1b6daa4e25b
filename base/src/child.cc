#include "outpost/base/child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <tuple>

#include "outpost/base/unique_fd.h"

extern char** environ;

namespace outpost {

namespace {

// posix_spawn's attributes and file actions, destroyed with the scope.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

}  // namespace

std::string ChildResult::failure(const std::string& who) const {
  std::string why = err;
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  if (auto nl = why.rfind('\n'); nl != std::string::npos) why.erase(0, nl + 1);
  for (const char* prefix : {"outpost: error: ", "outpost: "}) {
    if (why.rfind(prefix, 0) == 0) {
      why.erase(0, std::strlen(prefix));
      break;
    }
  }
  if (!why.empty()) return why;
  if (signal != 0) return who + " was ended by signal " + std::to_string(signal);
  return who + " failed (exit code " + std::to_string(exit_code) + ")";
}

Result<ChildResult> run_child(const std::vector<std::string>& argv, const ChildOptions& options) {
  if (argv.empty()) return Status::InvalidArgument("no program to run");
  // stdin is a socket, so that writing to a child that already ended is EPIPE, not SIGPIPE.
  int in[2], out[2], err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    return Status::Unavailable(std::string("cannot start a worker process: ") +
                               std::strerror(errno));
  }
  UniqueFd in_parent(in[0]), in_child(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return Status::Unavailable(std::string("cannot start a worker process: ") +
                               std::strerror(errno));
  }
  UniqueFd out_parent(out[0]), out_child(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) {
    return Status::Unavailable(std::string("cannot start a worker process: ") +
                               std::strerror(errno));
  }
  UniqueFd err_parent(err[0]), err_child(err[1]);

  SpawnSetup s;
  posix_spawn_file_actions_adddup2(&s.actions, in_child.get(), 0);
  posix_spawn_file_actions_adddup2(&s.actions, out_child.get(), 1);
  posix_spawn_file_actions_adddup2(&s.actions, err_child.get(), 2);
  // Nothing else of the daemon's (its store's descriptors, its sockets) reaches the worker.
  posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);
  // The child starts with no signal blocked and the usual dispositions, whatever the daemon's
  // threads block or ignore.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setsigdefault(&s.attr, &defaults);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0], &s.actions, &s.attr, args.data(), environ);
  if (rc != 0) {
    return Status::Unavailable("cannot start a worker process (" + argv[0] +
                               "): " + std::strerror(rc));
  }
  in_child.reset();
  out_child.reset();
  err_child.reset();

  ChildResult result;
  std::size_t written = 0;
  if (options.input.empty()) in_parent.reset();
  using Clock = std::chrono::steady_clock;
  Clock::time_point termed{};
  bool killed = false, reaped = false;
  int wstatus = 0;
  char buf[16384];
  while (out_parent.valid() || err_parent.valid()) {
    pollfd fds[3];
    int n = 0;
    int at_out = -1, at_err = -1, at_in = -1;
    if (out_parent.valid()) at_out = n, fds[n++] = {out_parent.get(), POLLIN, 0};
    if (err_parent.valid()) at_err = n, fds[n++] = {err_parent.get(), POLLIN, 0};
    if (in_parent.valid()) at_in = n, fds[n++] = {in_parent.get(), POLLOUT, 0};
    // Once it has ended, only what is already in the pipes is read: whatever it started may
    // hold them open for much longer, and its answer is complete.
    int ready = ::poll(fds, static_cast<nfds_t>(n), reaped ? 0 : 100);
    if ((ready < 0 && errno != EINTR) || (reaped && ready == 0)) break;
    if (ready > 0) {
      if (at_in >= 0 && fds[at_in].revents != 0) {
        ssize_t w = ::send(in_parent.get(), options.input.data() + written,
                           options.input.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) written += static_cast<std::size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == options.input.size())
          in_parent.reset();
      }
      for (auto [at, fd, text] : {std::tuple{at_out, &out_parent, &result.out},
                                  std::tuple{at_err, &err_parent, &result.err}}) {
        if (at < 0 || fds[at].revents == 0) continue;
        ssize_t r = ::read(fd->get(), buf, sizeof buf);
        if (r > 0) {
          std::size_t room = options.max_output - std::min(options.max_output, text->size());
          text->append(buf, std::min(room, static_cast<std::size_t>(r)));
        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
          fd->reset();
        }
      }
    }
    if (reaped) continue;
    if (::waitpid(pid, &wstatus, WNOHANG) == pid) {
      reaped = true;
    } else if (!killed && termed == Clock::time_point{} && options.stop && options.stop()) {
      ::kill(pid, SIGTERM);
      termed = Clock::now();
    } else if (!killed && termed != Clock::time_point{} &&
               Clock::now() - termed > std::chrono::seconds(5)) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
  }
  while (!reaped) {
    const pid_t w = ::waitpid(pid, &wstatus, 0);
    if (w == pid) reaped = true;
    if (w == pid || errno != EINTR) break;
  }
  // Not reaped (SIGCHLD ignored, say): its end is unknown, which is not success.
  if (!reaped) return result;
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.signal = WTERMSIG(wstatus);
  }
  return result;
}

}  // namespace outpost

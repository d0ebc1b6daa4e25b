#include "outpost/serve/scheduler.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "outpost/base/unique_fd.h"

namespace outpost::serve {

namespace {
constexpr std::int64_t kDay = 86400;
// A jump larger than this between two looks at the clock is a jump, not the loop's sleep.
constexpr std::int64_t kJump = 3600;
}  // namespace

int system_utc_offset(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (::localtime_r(&tt, &tm) == nullptr) return 0;
  return static_cast<int>(tm.tm_gmtoff);
}

Scheduler::Scheduler(LinkConfig link, Clock& clock, std::uint64_t seed,
                     std::function<int(std::int64_t)> utc_offset)
    : link_(std::move(link)), clock_(clock), rng_(seed), utc_offset_(std::move(utc_offset)) {
  last_seen_ = clock_.now();
}

void Scheduler::set_repositories(const std::vector<RepoPlan>& repos) {
  std::map<std::string, RepoState> next;
  for (const auto& r : repos) {
    auto it = states_.find(r.id);
    RepoState s = it == states_.end() ? RepoState{} : it->second;
    s.priority = r.priority;
    next[r.id] = s;
  }
  states_ = std::move(next);
}

bool Scheduler::in_window(std::int64_t t) const {
  if (link_.windows.empty()) return true;
  std::int64_t local = t + utc_offset_(t);
  int minute = static_cast<int>(((local % kDay) + kDay) % kDay / 60);
  for (const Window& w : link_.windows) {
    if (w.start == w.end) return true;
    if (w.start < w.end ? (minute >= w.start && minute < w.end)
                        : (minute >= w.start || minute < w.end)) {
      return true;
    }
  }
  return false;
}

std::int64_t Scheduler::window_opens(std::int64_t t) const {
  if (in_window(t)) return t;
  // Minute by minute up to a day ahead: simple, exact across offset changes, 1440 steps.
  std::int64_t m = t - (((t % 60) + 60) % 60) + 60;
  for (int i = 0; i <= 1440; ++i, m += 60) {
    if (in_window(m)) return m;
  }
  return kNever;  // windows that never open (cannot happen with valid windows)
}

void Scheduler::follow_clock() {
  const std::int64_t now = clock_.now();
  const std::int64_t moved = now - last_seen_;
  if (moved < 0 || moved > kJump) {
    // Keep every wait as long as it had left, measured from the new now.
    for (auto& [id, s] : states_) {
      if (s.next == kNever || s.next == 0) continue;
      s.next = now + std::max<std::int64_t>(0, s.next - last_seen_);
    }
  }
  last_seen_ = now;
}

std::vector<std::string> Scheduler::due(std::uint64_t budget_left, bool ignore_windows) {
  follow_clock();
  std::vector<std::string> out;
  const std::int64_t now = clock_.now();
  if (budget_left == 0 || (!ignore_windows && !in_window(now))) return out;
  std::vector<std::pair<int, std::string>> ready;
  for (const auto& [id, s] : states_) {
    if (s.next <= now) ready.emplace_back(s.priority, id);
  }
  std::sort(ready.begin(), ready.end());
  for (auto& [p, id] : ready) out.push_back(id);
  return out;
}

std::int64_t Scheduler::backoff(RetryClass c, int failures) {
  std::int64_t d = link_.backoff_min;
  switch (c) {
    case RetryClass::kNow: {
      int doublings = std::min(failures - 1, 3);
      d = link_.backoff_min << std::max(0, doublings);
      break;
    }
    case RetryClass::kLater: {
      int doublings = std::min(failures - 1, 30);
      d = link_.backoff_min;
      for (int i = 0; i < doublings && d < link_.backoff_max; ++i) d *= 2;
      break;
    }
    case RetryClass::kGiveUp: d = link_.backoff_max; break;
    case RetryClass::kOperator: return kNever;
    case RetryClass::kNone: return link_.check_interval;
  }
  d = std::min(d, link_.backoff_max);
  std::uniform_int_distribution<std::int64_t> jitter(d / 2, d);
  return std::max<std::int64_t>(1, jitter(rng_));
}

void Scheduler::record(const std::string& id, const Status& outcome) {
  follow_clock();
  auto it = states_.find(id);
  if (it == states_.end()) return;
  RepoState& s = it->second;
  const std::int64_t now = clock_.now();
  if (outcome.code() == Code::kCancelled) return;  // stopping: resume where it was
  s.last_attempt = now;
  s.last_class = retry_class(outcome);
  if (outcome.ok()) {
    s.failures = 0;
    s.last_success = now;
    s.last_error.clear();
    s.next = now + link_.check_interval;
    return;
  }
  ++s.failures;
  s.last_error = outcome.message();
  std::int64_t wait = backoff(s.last_class, s.failures);
  s.next = wait == kNever ? kNever : now + wait;
}

void Scheduler::force() {
  for (auto& [id, s] : states_) s.next = 0;
}

std::int64_t Scheduler::next_due() const {
  std::int64_t best = kNever;
  for (const auto& [id, s] : states_) best = std::min(best, s.next);
  if (best == kNever) return kNever;
  return window_opens(std::max(best, clock_.now()));
}

void Scheduler::make_due(const std::string& id) {
  auto it = states_.find(id);
  if (it != states_.end() && it->second.next != kNever) {
    it->second.next = std::min(it->second.next, clock_.now());
  }
}

Status check_link(const std::string& location, int timeout_s) {
  const bool http = location.rfind("http://", 0) == 0;
  const bool https = location.rfind("https://", 0) == 0;
  if (!http && !https) {
    std::string path = location.rfind("file://", 0) == 0 ? location.substr(7) : location;
    std::error_code ec;
    if (std::filesystem::is_directory(path + "/metadata", ec)) return Status::Ok();
    return Status::Unavailable("link down: " + path +
                               " is not there (a disk or share not mounted?)");
  }
  std::string rest = location.substr(http ? 7 : 8);
  rest = rest.substr(0, rest.find('/'));
  if (std::size_t at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  std::string host = rest, port = http ? "80" : "443";
  if (!rest.empty() && rest[0] == '[') {
    std::size_t close = rest.find(']');
    host = rest.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < rest.size() && rest[close + 1] == ':') {
      port = rest.substr(close + 2);
    }
  } else if (std::size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Status::Unavailable("link down: cannot resolve " + host + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  std::string last = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) continue;
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return Status::Ok();
    if (errno != EINPROGRESS) {
      last = std::strerror(errno);
      continue;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int rc = ::poll(&p, 1, timeout_s * 1000);
    if (rc == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) return Status::Ok();
      last = std::strerror(err);
    } else {
      last = "no answer in " + std::to_string(timeout_s) + " s";
    }
  }
  return Status::Unavailable("link down: " + host + ":" + port + ": " + last);
}

}  // namespace outpost::serve

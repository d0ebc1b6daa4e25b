#include "support/nginx.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

extern char** environ;

namespace outpost::test {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Starts argv[0] as a child that gets SIGTERM when this process dies, with stdin on /dev/null,
// stdout on stdout_fd (or /dev/null when -1) and stderr on stderr_path. Returns the pid.
pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, const std::string& stderr_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  const int devnull = ::open("/dev/null", O_RDWR);
  const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (devnull >= 0) ::dup2(devnull, 0);
  ::dup2(stdout_fd >= 0 ? stdout_fd : devnull, 1);
  ::dup2(err >= 0 ? err : devnull, 2);
  for (int fd = 3; fd < 256; ++fd) ::close(fd);
  ::execve(args[0], args.data(), environ);
  ::_exit(127);
}

// SIGTERM, then SIGKILL if it has not ended within two seconds; reaps it.
void stop(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// True once 127.0.0.1:port accepts a connection.
bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Waits until every port accepts, or the child exits, or 10 s pass.
bool wait_listening(pid_t pid, const std::vector<int>& ports) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    bool all = true;
    for (int p : ports) all = all && accepts(p);
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const std::size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  fs::rename(tmp, path);
}

// The "user" line of the config. A real deployment runs nginx's master as root and its workers
// as an unprivileged user (www-data on Debian), so a published file that only its owner can
// read answers 403. The rig does the same whenever it runs as root: workers run as nobody,
// so a repository tree that is not world-readable fails the tests as it would fail in the
// field. Outside root nginx cannot switch users, and the workers run as the test's user.
// nullopt: root, but no user nobody to run the workers as.
std::optional<std::string> worker_user_line() {
  if (::geteuid() != 0) return "";
  const passwd* user = ::getpwnam("nobody");
  if (user == nullptr) return std::nullopt;
  // Debian's nobody is in group nogroup; nginx's default group would be "nobody".
  const group* g = ::getgrgid(user->pw_gid);
  return "user nobody " + std::string(g != nullptr ? g->gr_name : "nogroup") + ";\n";
}

}  // namespace

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

namespace {

// Whether a server could listen on 127.0.0.1:port now (with SO_REUSEADDR, as servers bind).
bool bindable(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

// Ports outside the kernel's ephemeral range, which neither another test's bind to port 0
// nor an outgoing connection is ever given: a port taken from that range and closed again
// could go to either before the server that was meant to have it bound it (seen as a daemon
// test failing at ctest -j3). Each port is held for the life of this process by a lock on a
// file named after it, so that two tests running at once never pick the same one.
int unused_port() {
  static std::mutex mu;
  static std::vector<int> held;  // the lock files' descriptors, open until the process ends
  std::lock_guard<std::mutex> lock(mu);
  int low = 32768, high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  const int first = low >= 20000 ? 10000 : high + 1;
  const int count = low >= 20000 ? low - 10000 : 65535 - high;
  if (count < 100) return 0;
  const std::string dir = "/tmp/outpost-test-ports";  // shared by every test process
  if (::mkdir(dir.c_str(), 01777) == 0) ::chmod(dir.c_str(), 01777);  // whatever the umask
  std::mt19937 rng(static_cast<std::uint32_t>(std::random_device{}() ^ ::getpid()));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = first + static_cast<int>(rng() % static_cast<std::uint32_t>(count));
    const std::string file = dir + "/" + std::to_string(port);
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && bindable(port)) {
      held.push_back(fd);
      return port;
    }
    ::close(fd);
  }
  return 0;
}

// ---- Nginx ----

Nginx::Nginx(const std::string& root, bool tls, int max_ranges)
    : max_ranges_(max_ranges), tls_(tls) {
  const std::string nginx = find_program("nginx", {"/usr/sbin", "/usr/local/sbin", "/sbin"});
  if (nginx.empty()) {
    why_ = "nginx not installed: apt-get install nginx-light";
    return;
  }
  if (tls && find_program("openssl").empty()) {
    why_ = "openssl not installed: apt-get install openssl";
    return;
  }
  if (!worker_user_line()) {
    why_ = "running as root but there is no user 'nobody' for nginx's workers: add one";
    return;
  }
  fs::create_directories(dir_ / "logs");
  fs::create_directories(dir_ / "temp");
  if (tls) {
    RunResult r =
        run_program({find_program("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir_ / "key.pem", "-out",
                     dir_ / "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                     "subjectAltName=IP:127.0.0.1,DNS:localhost"});
    if (r.exit_code != 0) {
      why_ = "openssl could not make a self-signed certificate: " + last_line(r.err);
      return;
    }
  }
  // Another process may take the port between unused_port() and nginx's bind: try again.
  for (int attempt = 0; attempt < 5 && !ok_; ++attempt) ok_ = start(root, tls);
  if (!ok_ && why_.empty()) why_ = "nginx did not start";
}

bool Nginx::start(const std::string& root, bool tls) {
  port_ = unused_port();
  https_port_ = tls ? unused_port() : 0;
  const std::string p = dir_.path();
  std::ostringstream conf;
  // With a user to switch to, a master process is needed: nginx drops privileges only in its
  // workers (in single-process mode it keeps serving as root).
  const std::string user = worker_user_line().value_or("");
  conf << "daemon off;\n"
       << (user.empty() ? "master_process off;\n" : "master_process on;\n") << user
       << "worker_processes 1;\n"
       << "pid " << p << "/nginx.pid;\n"
       << "error_log " << p << "/logs/error.log warn;\n"
       << "events { worker_connections 512; }\n"
       << "http {\n"
       << "  log_format outpost '$status $bytes_sent $request_length \"$request\" "
          "\"$http_range\"';\n"
       << "  access_log " << p << "/logs/access.log outpost;\n"
       << "  client_body_temp_path " << p << "/temp/body;\n"
       << "  proxy_temp_path " << p << "/temp/proxy;\n"
       << "  fastcgi_temp_path " << p << "/temp/fastcgi;\n"
       << "  uwsgi_temp_path " << p << "/temp/uwsgi;\n"
       << "  scgi_temp_path " << p << "/temp/scgi;\n"
       << "  types { application/json json; text/html html; text/plain txt; }\n"
       << "  default_type application/octet-stream;\n"
       << "  sendfile on;\n"
       << "  keepalive_timeout 60s;\n"
       << "  keepalive_requests 100000;\n"
       << "  gzip off;\n"
       << "  etag on;\n"
       << "  server_tokens off;\n"
       << "  server {\n"
       << "    listen 127.0.0.1:" << port_ << ";\n";
  if (tls) {
    conf << "    listen 127.0.0.1:" << https_port_ << " ssl;\n"
         << "    ssl_certificate " << p << "/cert.pem;\n"
         << "    ssl_certificate_key " << p << "/key.pem;\n";
  }
  if (max_ranges_ > 0) conf << "    max_ranges " << max_ranges_ << ";\n";
  conf << "    root " << root << ";\n"
       << "    location / { }\n"
       << "  }\n"
       << "}\n";
  write_atomically(dir_ / "nginx.conf", conf.str());
  const std::string nginx = find_program("nginx", {"/usr/sbin", "/usr/local/sbin", "/sbin"});
  pid_ = spawn({nginx, "-p", p, "-c", p + "/nginx.conf", "-e", p + "/logs/error.log"}, -1,
               dir_ / "logs/stderr.log");
  std::vector<int> ports{port_};
  if (tls) ports.push_back(https_port_);
  if (wait_listening(pid_, ports)) return true;
  stop(pid_);
  pid_ = -1;
  why_ = "nginx did not start: " + last_line(slurp(dir_ / "logs/error.log"));
  return false;
}

Nginx::~Nginx() { stop(pid_); }

std::string Nginx::url() const { return "http://127.0.0.1:" + std::to_string(port_); }
std::string Nginx::https_url() const {
  return tls_ ? "https://127.0.0.1:" + std::to_string(https_port_) : "";
}
std::string Nginx::ca_file() const { return tls_ ? dir_ / "cert.pem" : ""; }
std::string Nginx::host_port() const { return "127.0.0.1:" + std::to_string(port_); }

std::vector<std::string> Nginx::access_log() const {
  // nginx writes a line when it has finished a request, which can be a moment after the
  // client read the last byte: read until the log stops growing.
  std::string text = slurp(dir_ / "logs/access.log");
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::string again = slurp(dir_ / "logs/access.log");
    if (again == text) break;
    text = std::move(again);
  }
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::uint64_t Nginx::bytes_sent() const {
  std::uint64_t sum = 0;
  for (const auto& line : access_log()) {
    std::istringstream in(line);
    std::uint64_t status = 0, sent = 0;
    in >> status >> sent;
    sum += sent;
  }
  return sum;
}

std::uint64_t Nginx::bytes_received() const {
  std::uint64_t sum = 0;
  for (const auto& line : access_log()) {
    std::istringstream in(line);
    std::uint64_t status = 0, sent = 0, received = 0;
    in >> status >> sent >> received;
    sum += received;
  }
  return sum;
}

std::size_t Nginx::requests() const { return access_log().size(); }

std::size_t Nginx::multi_range_requests() const {
  std::size_t n = 0;
  for (const auto& line : access_log()) {
    const std::size_t range = line.rfind(" \"");
    if (range != std::string::npos && line.find(',', range) != std::string::npos) ++n;
  }
  return n;
}

// ---- FaultProxy ----

FaultProxy::FaultProxy(const std::string& upstream_host_port, const std::string& rules_json) {
  write_atomically(dir_ / "rules.json", rules_json);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    why_ = "pipe failed";
    return;
  }
  pid_ = spawn({OUTPOST_FAULT_PROXY, "--upstream", upstream_host_port, "--port", "0", "--rules",
                dir_ / "rules.json", "--stats", dir_ / "stats.txt"},
               pipe_fds[1], dir_ / "stderr.log");
  ::close(pipe_fds[1]);
  // The proxy prints its port on its first line once it listens.
  std::string line;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
    pollfd pfd{pipe_fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buf[64];
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  port_ = std::atoi(line.c_str());
  ok_ = port_ > 0;
  if (!ok_) why_ = "outpost-fault-proxy did not start: " + last_line(slurp(dir_ / "stderr.log"));
}

FaultProxy::~FaultProxy() { stop(pid_); }

std::string FaultProxy::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void FaultProxy::set_rules(const std::string& rules_json) {
  write_atomically(dir_ / "rules.json", rules_json);
}

std::pair<std::uint64_t, std::uint64_t> FaultProxy::stats() const {
  // The proxy rewrites the file (atomically) before it hands bytes to the kernel, so what a
  // client has received is already counted when the client is done.
  std::istringstream in(slurp(dir_ / "stats.txt"));
  std::uint64_t bytes = 0, requests = 0;
  in >> bytes >> requests;
  return {bytes, requests};
}

std::string FaultProxy::log() const { return slurp(dir_ / "stderr.log"); }

std::uint64_t FaultProxy::bytes_to_client() const { return stats().first; }
std::size_t FaultProxy::requests() const { return static_cast<std::size_t>(stats().second); }

}  // namespace outpost::test

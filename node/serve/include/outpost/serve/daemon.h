// `outpost serve`: the node daemon (docs/daemon.md). One process runs
//  - the scheduler thread: syncs the subscriptions when the link is up, within the windows and
//    the data budget, by priority, backing off after failures by retry class (scheduler.h);
//  - the HTTP server (http_server.h): peer serving of every held repository under /repo/,
//    /status (HTML, or JSON at /status.json), /metrics (Prometheus text);
//  - the admin socket (a Unix socket, mode 0660, beside the store by default): `outpost status`
//    and `outpost sync --now` talk to it;
//  - the main thread: signals. SIGHUP reloads the configuration (a bad one is logged and the
//    running one kept); SIGTERM or SIGINT stop within 5 s, keeping every verified byte (a sync
//    under way is cancelled: its worker gets SIGTERM; the next start resumes it).
// The work itself (a subscription, a sync, a gc, the kiosk's indexing) runs in short-lived
// worker processes of the same binary (run_worker below; docs/daemon.md, "Worker
// processes"), so what it allocates leaves with them and a crash there is a failed round.
// Logs are one line per event on stderr (journald under systemd), nothing while nothing
// happens. Under systemd (Type=notify) it reports READY=1, RELOADING=1, STOPPING=1 and pings
// the watchdog, when built with libsystemd.
#pragma once

#include <cstdio>
#include <string>

#include "outpost/base/clock.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"

namespace outpost::serve {

struct DaemonOptions {
  std::string config_path;  // default_config_path() when empty
  Clock* clock = nullptr;   // nullptr: system_clock()
};

// $OUTPOST_CONFIG, else /etc/outpost/outpost.toml.
std::string default_config_path();

// Runs the daemon until SIGTERM or SIGINT; returns the process exit code (0 after a clean
// stop; 2 for a bad configuration; 1 or the Status class's code when it cannot start, with
// one "outpost: error: ..." line).
int run_daemon(const DaemonOptions& options);

// The daemon's worker processes (docs/daemon.md, "Worker processes"): the daemon runs its own
// binary (/proc/self/exe) with a first argument no person types, "__kiosk-index STORE INDEX"
// (the kiosk's indexing). Returns the worker's exit code (0, or 1 with one "outpost: error:"
// line), or -1 when argv names no worker.
int run_worker(int argc, char** argv);

// `outpost serve --check-config`: validates the file; prints one line saying it is valid (and
// what it configures) and returns 0, or the error line and 2.
int check_config(const std::string& path);

// The admin socket of a store (where `outpost status` looks for a running daemon).
std::string default_admin_socket(const std::string& store_dir);

// Sends one command ("status", "sync") to the daemon at socket_path and returns its JSON
// answer. kNotFound when no daemon listens there (no socket, or a stale one): the caller then
// works on the store directly. timeout_s bounds the whole exchange.
Result<Json> admin_call(const std::string& socket_path, const std::string& command,
                        double timeout_s);

// The human form of the daemon's status JSON (what `outpost status` prints when a daemon
// runs), several lines ending in '\n'.
std::string describe_status(const Json& status);

}  // namespace outpost::serve

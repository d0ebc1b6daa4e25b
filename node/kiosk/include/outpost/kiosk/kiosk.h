// The kiosk: a light, accessible, multilingual reader of what a node holds (docs/kiosk.md).
// Pages are rendered on the server as semantic HTML with one small stylesheet and no script:
// home (bundles by kind, newest first, filters, what changed lately), the resolution reader
// (Markdown through cmark, numbered paragraphs with anchors, footnotes linked both ways), the
// indicator page (table with GET filters, an SVG chart drawn here, CSV download), search
// (Xapian, snippets with highlighted terms, within one document too), and provenance on every
// page. Interface words come from gettext-style catalogs (po/), chosen by ?hl= or
// Accept-Language.
//
// Layering: the kiosk reads the store through outpost::node (read-only Nodes, one per thread
// at a time) and never writes it; its only writes are its search index, a folder of its own.
// It knows nothing of HTTP servers: the daemon adapts KioskRequest/KioskResponse to its own.
//
// Thread-safety: handle() may be called from many threads at once once start() returned.
// A background thread watches the store (every refresh_ms) and indexes new bundle versions;
// pages never wait for it (they read the last snapshot; search reads the index as it is).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/status.h"

namespace outpost::kiosk {

struct KioskOptions {
  std::string store;                      // the node's store directory (opened read-only)
  std::string index_dir;                  // Xapian index; "" : <store>/kiosk-index
  std::string site_name = "outpost";      // shown in the header
  std::int64_t stale_after = 14 * 86400;  // seconds without confirmation before a warning
  unsigned refresh_ms = 2000;             // how often the store is checked for new versions
  Clock* clock = nullptr;                 // nullptr: system_clock()
  // Indexing for search in a worker process (docs/daemon.md, "Worker processes"): this
  // command with the store and the index folder appended, which does what index_store() does
  // (the daemon: its own binary). The memory indexing takes goes back with the process, and a
  // crash there leaves the pages up. Empty: in a thread of this process.
  std::vector<std::string> index_command;
};

struct KioskRequest {
  std::string method = "GET";
  std::string path = "/";                                    // decoded
  std::vector<std::pair<std::string, std::string>> args;     // query, decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string header(std::string_view lower_name) const;
  std::string arg(std::string_view name) const;
};

struct KioskResponse {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string header(std::string_view name) const;  // case-insensitive, "" when absent
};

class Kiosk {
 public:
  // Opens the store read-only and the index (rebuilt from the store when missing or
  // damaged), and starts the watcher thread. Limits malloc to two arenas for the whole
  // process (mallopt M_ARENA_MAX), which keeps an idle daemon's memory small. kNotFound when the
  // store does not exist, kFailedPrecondition when the index folder cannot be created.
  static Result<std::unique_ptr<Kiosk>> open(const KioskOptions& options);
  ~Kiosk();  // stops the watcher
  Kiosk(const Kiosk&) = delete;
  Kiosk& operator=(const Kiosk&) = delete;

  // Answers one request (GET or HEAD; anything else is 405). Never throws.
  KioskResponse handle(const KioskRequest& request);

  // Checks the store now and indexes what is new (what the watcher does every refresh_ms);
  // returns when done. For tests and the benchmark.
  Status refresh();

  // The indexing worker's work: indexes every bundle version the store holds that the index
  // (options.index_dir) does not, and returns. Opens no watcher and serves nothing.
  static Status index_store(const KioskOptions& options);

  struct Impl;

 private:
  explicit Kiosk(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::kiosk

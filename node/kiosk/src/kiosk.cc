#include "outpost/kiosk/kiosk.h"

#include <malloc.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <system_error>
#include <thread>

#include "outpost/base/child.h"
#include "outpost/base/json.h"
#include "outpost/kiosk/catalog.h"
#include "outpost/kiosk/indicator.h"
#include "outpost/kiosk/markdown.h"
#include "outpost/kiosk/search.h"
#include "outpost/kiosk/text.h"
#include "outpost/node/node.h"
#include "outpost/storage/store.h"
#include "style.h"

namespace outpost::kiosk {

std::string KioskRequest::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return "";
}

std::string KioskRequest::arg(std::string_view name) const {
  for (const auto& [k, v] : args) {
    if (k == name) return v;
  }
  return "";
}

std::string KioskResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return "";
}

namespace {

constexpr std::uint64_t kMaxDocumentBytes = 16u << 20;
constexpr std::uint64_t kMaxCsvBytes = 64u << 20;
constexpr std::size_t kPageCacheBytes = 8u << 20;
constexpr std::size_t kChangesShown = 10;  // home: "what changed", the rest counted
constexpr std::size_t kListShort = 20;     // home: the newest of each kind
constexpr std::size_t kListPage = 50;      // home with ?kind=: a page of the list
constexpr const char* kCsp =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'";

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex64(std::uint64_t v) {
  static const char* d = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = d[v & 15];
  return s;
}

std::string gzip(std::string_view in) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return "";
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

bool accepts_gzip(const std::string& header) {
  // "gzip" listed without q=0.
  std::size_t at = header.find("gzip");
  if (at == std::string::npos) return false;
  std::size_t end = header.find(',', at);
  std::string item = header.substr(at, end == std::string::npos ? std::string::npos : end - at);
  return item.find("q=0") == std::string::npos || item.find("q=0.") != std::string::npos;
}

std::string date_of(std::int64_t t) {
  if (t <= 0) return "\xE2\x80\x94";
  return format_utc(t).substr(0, 10);
}
std::string time_of(std::int64_t t) {
  if (t <= 0) return "\xE2\x80\x94";
  const std::string s = format_utc(t);
  return s.substr(0, 10) + " " + s.substr(11, 5) + " UTC";
}

const std::string kStyleHref = "/static/kiosk-" + hex64(fnv1a(kStyle)).substr(0, 12) + ".css";

// The fields of a manifest's "meta" that pages show. Only these are kept, as strings: a
// snapshot of 1,000 bundles then costs a few hundred KB, not a parsed manifest each.
constexpr std::array<std::string_view, 7> kMetaKeys = {
    "title", "publisher", "body", "symbol", "adopted", "note", "description"};

struct Entry {
  node::BundleInfo info;
  std::array<std::string, kMetaKeys.size()> meta;  // by kMetaKeys; "" when absent
  std::vector<std::string> paths;
  std::map<std::string, std::string> docs;  // language -> Markdown file
  std::string csv;                          // first CSV file
  void set_meta(const Json& m) {
    for (std::size_t i = 0; i < kMetaKeys.size(); ++i) {
      const Json* v = m.find(kMetaKeys[i]);
      if (v == nullptr) continue;
      if (v->is_string()) meta[i] = v->as_string();
      if (v->is_int()) meta[i] = std::to_string(v->as_int());
      meta[i].shrink_to_fit();
    }
  }
  const std::string& meta_string(std::string_view key) const {
    static const std::string none;
    for (std::size_t i = 0; i < kMetaKeys.size(); ++i) {
      if (kMetaKeys[i] == key) return meta[i];
    }
    return none;
  }
  std::string title() const {
    std::string t = meta_string("title");
    if (t.empty()) t = info.title;
    return t.empty() ? info.name : t;
  }
  std::string publisher() const {
    std::string p = meta_string("publisher");
    if (p.empty()) p = meta_string("body");
    return p.empty() ? info.repo : p;
  }
};

struct Change {
  std::string bundle;
  std::uint64_t from = 0, to = 0;
};

struct Snapshot {
  std::uint64_t generation = 0;
  std::vector<Entry> entries;  // newest first
  std::map<std::string, std::size_t, std::less<>> by_name;
  std::vector<Change> changes;  // in the last refresh that changed something
  std::int64_t changed_at = 0;
  std::int64_t last_sync = 0;  // latest of the subscriptions
  std::string fingerprint;
  const Entry* find(std::string_view name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &entries[it->second];
  }
};

// "What changed in the last sync" outlives a restart: saved with the search index as
// {"at": T, "changes": [[bundle, from, to], ...]} (the first kChangesKept).
constexpr std::size_t kChangesKept = 200;

std::string changes_note(const std::vector<Change>& changes, std::int64_t at) {
  Json list = Json::array();
  for (std::size_t i = 0; i < changes.size() && i < kChangesKept; ++i) {
    Json c = Json::array();
    c.as_array().push_back(Json(changes[i].bundle));
    c.as_array().push_back(Json(changes[i].from));
    c.as_array().push_back(Json(changes[i].to));
    list.as_array().push_back(std::move(c));
  }
  Json note = Json::object();
  note.set("at", Json(at));
  note.set("changes", std::move(list));
  return note.dump();
}

// The saved changes; none when the note is missing or unreadable (it is only a cache).
void read_changes_note(const std::string& text, Snapshot* s) {
  if (text.empty()) return;
  auto note = parse_json(text);
  if (!note.ok()) return;
  const Json* at = note->find("at");
  const Json* list = note->find("changes");
  if (at == nullptr || !at->is_int() || list == nullptr || !list->is_array()) return;
  std::vector<Change> changes;
  for (const auto& c : list->as_array()) {
    if (!c.is_array() || c.as_array().size() != 3 || !c.as_array()[0].is_string() ||
        !c.as_array()[1].is_int() || !c.as_array()[2].is_int() || c.as_array()[1].as_int() < 0 ||
        c.as_array()[2].as_int() < 0) {
      return;
    }
    changes.push_back({c.as_array()[0].as_string(),
                       static_cast<std::uint64_t>(c.as_array()[1].as_int()),
                       static_cast<std::uint64_t>(c.as_array()[2].as_int())});
  }
  s->changes = std::move(changes);
  s->changed_at = at->as_int();
}

struct Cached {
  KioskResponse plain;
  std::string etag;
  // Made on the first request that accepts gzip; "" when not worth it.
  mutable std::once_flag gz_once;
  mutable std::string gz;
  const std::string& gzipped() const {
    std::call_once(gz_once, [this] {
      if (plain.body.size() > 256) gz = gzip(plain.body);
      if (gz.size() >= plain.body.size()) gz.clear();
    });
    return gz;
  }
};

bool valid_language_tag(const std::string& l) {
  if (l.empty() || l.size() > 8) return false;
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
}

bool rtl_language(const std::string& l) { return l == "ar" || l == "he" || l == "fa" || l == "ur"; }

std::string language_name(const std::string& l) {
  for (const auto& k : languages()) {
    if (k == l) return catalog(l).name.empty() ? l : catalog(l).name;
  }
  if (l == "es") return "Espa\xC3\xB1ol";
  if (l == "ru") return "\xD0\xA0\xD1\x83\xD1\x81\xD1\x81\xD0\xBA\xD0\xB8\xD0\xB9";
  if (l == "zh") return "\xE4\xB8\xAD\xE6\x96\x87";
  return l;
}

}  // namespace

struct Kiosk::Impl {
  KioskOptions opt;
  Clock* clock = nullptr;

  std::mutex nodes_mu;
  std::vector<std::unique_ptr<node::Node>> nodes;

  std::mutex snap_mu;
  std::shared_ptr<const Snapshot> snap = std::make_shared<Snapshot>();

  std::unique_ptr<SearchIndex> index;
  std::mutex refresh_mu;  // one refresh at a time

  std::mutex cache_mu;
  std::list<std::pair<std::string, std::shared_ptr<const Cached>>> lru;
  std::map<std::string, decltype(lru)::iterator> cache;
  std::size_t cache_bytes = 0;

  std::mutex tables_mu;
  std::list<std::pair<std::string, std::shared_ptr<const CsvTable>>> tables;  // 2 at most

  std::mutex wake_mu;
  std::condition_variable_any wake;
  std::atomic<bool> stopping{false};  // ends an indexing batch early (the daemon stops in 5 s)
  // The snapshot generation whose every version the search index holds. A snapshot is shown
  // before its new versions are indexed: until this reaches it, a search page may miss them, so
  // it says so and is neither cached here nor by the browser.
  std::atomic<std::uint64_t> indexed_generation{0};
  bool index_behind(const Snapshot& s) const { return indexed_generation.load() < s.generation; }
  std::jthread watcher;

  // ---- the store ----
  Result<std::unique_ptr<node::Node>> take_node() {
    {
      std::lock_guard lock(nodes_mu);
      if (!nodes.empty()) {
        auto n = std::move(nodes.back());
        nodes.pop_back();
        return n;
      }
    }
    node::NodeOptions no;
    no.dir = opt.store;
    no.read_only = true;
    no.clock = clock;
    return node::Node::open(no);
  }
  void give_node(std::unique_ptr<node::Node> n) {
    std::lock_guard lock(nodes_mu);
    if (nodes.size() < 8) nodes.push_back(std::move(n));
  }
  Result<std::string> read_file(const std::string& bundle, const std::string& path,
                                std::uint64_t max) {
    OUTPOST_ASSIGN_OR_RETURN(auto n, take_node());
    std::string out;
    Status st = n->cat(bundle, path, [&](ByteView b) {
      if (out.size() + b.size() > max) {
        return Status::ResourceExhausted(path + " is larger than the kiosk shows");
      }
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
      return Status::Ok();
    });
    give_node(std::move(n));
    if (!st.ok()) return st;
    return out;
  }
  std::shared_ptr<const Snapshot> snapshot() {
    std::lock_guard lock(snap_mu);
    return snap;
  }

  Status refresh();
  Status refresh_pass(bool* released);
  Status refresh_snapshot(bool* read_manifests, bool* note_pending);
  std::uint64_t seen_commit = 0;  // the store's last commit when refresh_snapshot last read it
  Status index_in_worker(const Snapshot& s, bool* released);
  // The worker's last failure, not retried before the store changes or a minute passes.
  Status worker_failed;
  std::uint64_t worker_failed_commit = 0;
  std::int64_t worker_failed_at = 0;
  void release_memory();
  void watch(std::stop_token stop);

  // ---- pages ----
  KioskResponse handle(const KioskRequest& r);
  KioskResponse route(const KioskRequest& r, const Messages& t, const Snapshot& s);
  std::string shell(const Messages& t, const KioskRequest& r, const std::string& title,
                    const std::string& main, const std::string& footer);
  std::string node_footer(const Messages& t, const Snapshot& s);
  std::string bundle_footer(const Messages& t, const Entry& e);
  KioskResponse html(int status, std::string body) {
    KioskResponse resp;
    resp.status = status;
    resp.content_type = "text/html; charset=utf-8";
    resp.body = std::move(body);
    return resp;
  }
  KioskResponse not_found(const Messages& t, const KioskRequest& r, const Snapshot& s,
                          const std::string& what);
  KioskResponse home(const Messages& t, const KioskRequest& r, const Snapshot& s);
  KioskResponse bundle_page(const Messages& t, const KioskRequest& r, const Snapshot& s,
                            const Entry& e);
  KioskResponse resolution(const Messages& t, const KioskRequest& r, const Snapshot& s,
                           const Entry& e);
  KioskResponse indicator(const Messages& t, const KioskRequest& r, const Snapshot& s,
                          const Entry& e);
  KioskResponse search(const Messages& t, const KioskRequest& r, const Snapshot& s);
  KioskResponse download(const Messages& t, const KioskRequest& r, const Snapshot& s);
  std::string hl_query(const KioskRequest& r) {
    const std::string hl = r.arg("hl");
    for (const auto& l : languages()) {
      if (l == hl) return "hl=" + hl;
    }
    return "";
  }
  std::string link(const KioskRequest& r, std::string path) {
    const std::string q = hl_query(r);
    if (q.empty()) return path;
    return path + (path.find('?') == std::string::npos ? "?" : "&") + q;
  }
  std::shared_ptr<const CsvTable> table(const Entry& e, Status* why);
};

// ---- the watcher ----

Status Kiosk::Impl::refresh_snapshot(bool* read_manifests, bool* note_pending) {
  OUTPOST_ASSIGN_OR_RETURN(auto n, take_node());
  // Node::list() reads and parses every manifest (on a Pi, a good part of a second and the
  // pages of every manifest for 1,000 bundles): only when the store committed something since
  // the last look. The kiosk never writes the store, so an idle node reads nothing.
  auto commit = n->store().last_commit();
  if (commit.ok() && seen_commit != 0 && *commit == seen_commit) {
    give_node(std::move(n));
    return Status::Ok();
  }
  auto list = n->list();
  auto subs = n->subscriptions();
  if (!list.ok()) {
    give_node(std::move(n));
    return list.error();
  }
  std::string fingerprint;
  for (const auto& b : *list) {
    fingerprint +=
        b.name + "@" + std::to_string(b.current) + "@" + std::to_string(b.confirmed) + ";";
  }
  std::int64_t last_sync = 0;
  if (subs.ok()) {
    for (const auto& s : *subs) last_sync = std::max(last_sync, s.last_sync);
  }
  fingerprint += std::to_string(last_sync);
  auto old = snapshot();
  *read_manifests = true;  // list() did
  if (fingerprint != old->fingerprint) {
    auto s = std::make_shared<Snapshot>();
    s->generation = old->generation + 1;
    s->fingerprint = fingerprint;
    s->last_sync = last_sync;
    for (const auto& b : *list) {
      Entry e;
      e.info = b;
      const Entry* prev = old->find(b.name);
      if (prev != nullptr && prev->info.current == b.current) {
        e.meta = prev->meta, e.paths = prev->paths, e.docs = prev->docs, e.csv = prev->csv;
      } else {
        std::string fallback = "en";
        auto manifest = n->show(b.name);
        if (manifest.ok()) {
          if (const Json* m = manifest->find("meta"); m != nullptr && m->is_object()) {
            e.set_meta(*m);
            if (const Json* l = m->find("languages"); l != nullptr && l->is_array() &&
                                                      !l->as_array().empty() &&
                                                      l->as_array()[0].is_string()) {
              fallback = l->as_array()[0].as_string();
            }
          }
          if (const Json* f = manifest->find("files"); f != nullptr && f->is_object()) {
            if (const Json* p = f->find("path"); p != nullptr && p->is_array()) {
              for (const auto& x : p->as_array()) {
                if (x.is_string()) e.paths.push_back(x.as_string());
              }
            }
          }
        }
        for (const auto& p : e.paths) {
          const auto ends = [&](std::string_view suffix) {
            return p.size() >= suffix.size() &&
                   p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0;
          };
          if (ends(".md")) {
            // NAME.<lang>.md
            std::string stem = p.substr(0, p.size() - 3);
            std::size_t dot = stem.rfind('.');
            std::string lang = dot == std::string::npos ? fallback : stem.substr(dot + 1);
            if (!valid_language_tag(lang)) lang = fallback;
            e.docs.emplace(lang, p);
          } else if (ends(".csv") && e.csv.empty()) {
            e.csv = p;
          }
        }
        if (prev != nullptr)
          s->changes.push_back({b.name, prev->info.current, b.current});
        else if (old->generation > 0)
          s->changes.push_back({b.name, 0, b.current});
      }
      s->entries.push_back(std::move(e));
    }
    for (const auto& e : old->entries) {
      bool kept = std::any_of(list->begin(), list->end(),
                              [&](const node::BundleInfo& b) { return b.name == e.info.name; });
      if (!kept) s->changes.push_back({e.info.name, e.info.current, 0});
    }
    if (s->changes.empty()) {
      s->changes = old->changes, s->changed_at = old->changed_at;
    } else {
      s->changed_at = clock->now();
      // Saved by the commit below, with the index of the versions it names.
      OUTPOST_RETURN_IF_ERROR(index->set_note("changes", changes_note(s->changes, s->changed_at)));
      *note_pending = true;
    }
    std::stable_sort(s->entries.begin(), s->entries.end(), [](const Entry& a, const Entry& b) {
      return a.info.published > b.info.published;
    });
    for (std::size_t i = 0; i < s->entries.size(); ++i) s->by_name[s->entries[i].info.name] = i;
    std::lock_guard lock(snap_mu);
    snap = s;
  }
  give_node(std::move(n));
  if (commit.ok()) seen_commit = *commit;
  return Status::Ok();
}

Status Kiosk::Impl::refresh() {
  std::lock_guard refreshing(refresh_mu);
  // The pass runs in a short-lived thread and the few results that stay (the snapshot, the
  // index's version list) are copied here afterwards: what the pass allocated (parsed
  // manifests, documents, Xapian's buffers) is then all free, in whole pages malloc_trim can
  // hand back. Indexing in this thread left the results scattered over megabytes of otherwise
  // free pages that stayed resident (measured: docs/BENCHMARKS.md, "Kiosk").
  bool released = false;
  const std::uint64_t generation = snapshot()->generation;
  Status st;
  try {
    std::thread([&] { st = refresh_pass(&released); }).join();
  } catch (const std::system_error&) {  // no thread to be had: do it here
    st = refresh_pass(&released);
  }
  if (released) {
    if (auto s = snapshot(); s->generation != generation) {
      auto compact = std::make_shared<Snapshot>(*s);
      std::lock_guard lock(snap_mu);
      if (snap == s) snap = std::move(compact);
    }
    index->reallocate();
    // Indexing a batch allocates tens of MB that a Pi should get back while idle.
    malloc_trim(0);
  }
  return st;
}

Status Kiosk::Impl::refresh_pass(bool* released) {
  bool read_manifests = false, note_pending = false;
  OUTPOST_RETURN_IF_ERROR(refresh_snapshot(&read_manifests, &note_pending));

  // The index follows the snapshot; pages never wait for it.
  auto s = snapshot();
  if (!opt.index_command.empty()) {
    if (note_pending) OUTPOST_RETURN_IF_ERROR(index->commit());
    if (read_manifests) {
      release_memory();
      *released = true;
    }
    return index_in_worker(*s, released);
  }
  auto held = index->versions();
  if (!held.ok()) return held.error();
  std::map<std::string, std::uint64_t> indexed(held->begin(), held->end());
  std::size_t pending = 0;
  Status unread;  // the first document that could not be read: its version is tried again
  for (const auto& e : s->entries) {
    auto it = indexed.find(e.info.name);
    if (it != indexed.end() && it->second == e.info.current) continue;
    std::vector<IndexedText> texts;
    if (!e.docs.empty()) {
      Status read;
      for (const auto& [lang, path] : e.docs) {
        auto md = read_file(e.info.name, path, kMaxDocumentBytes);
        // Larger than the kiosk shows: indexed without it, as the reader shows it without.
        if (!md.ok() && md.error().code() == Code::kResourceExhausted) continue;
        if (!md.ok()) {
          read = md.error();
          break;
        }
        IndexedText t{e.info.name, e.info.kind, lang, e.title(), render_markdown(*md).paragraphs};
        texts.push_back(std::move(t));
      }
      if (!read.ok()) {
        // Not recorded as indexed, so the next pass reads it again.
        if (unread.ok()) {
          unread =
              Status::Unavailable("cannot index " + e.info.name + " for search: " + read.message() +
                                  " (tried again at the next refresh)");
        }
        continue;
      }
    } else {
      std::string lang = "en";
      texts.push_back(IndexedText{
          e.info.name, e.info.kind, lang, e.title(), {{"", e.meta_string("description")}}});
    }
    if (stopping) break;  // what is committed stays; the next start goes on from there
    OUTPOST_RETURN_IF_ERROR(index->replace(e.info.name, e.info.current, texts));
    if (++pending % 50 == 0) OUTPOST_RETURN_IF_ERROR(index->commit());
  }
  for (const auto& [name, version] : indexed) {
    if (version != 0 && s->find(name) == nullptr) {
      OUTPOST_RETURN_IF_ERROR(index->remove(name));
      ++pending;
    }
  }
  if (pending > 0 || note_pending) OUTPOST_RETURN_IF_ERROR(index->commit());
  if (pending > 0 || read_manifests) {
    release_memory();
    *released = true;
  }
  if (!unread.ok()) return unread;
  if (!stopping) indexed_generation = s->generation;
  return Status::Ok();
}

Status Kiosk::Impl::index_in_worker(const Snapshot& s, bool* released) {
  auto held = index->versions();
  if (!held.ok()) return held.error();
  std::map<std::string, std::uint64_t> indexed(held->begin(), held->end());
  bool behind = std::any_of(s.entries.begin(), s.entries.end(), [&](const Entry& e) {
    auto it = indexed.find(e.info.name);
    return it == indexed.end() || it->second != e.info.current;
  });
  for (const auto& [name, version] : indexed) {
    if (version != 0 && s.find(name) == nullptr) behind = true;
  }
  if (!behind) {
    if (!stopping) indexed_generation = s.generation;
    return Status::Ok();
  }
  if (!worker_failed.ok() && worker_failed_commit == seen_commit &&
      clock->now() - worker_failed_at < 60) {
    return worker_failed;
  }
  std::vector<std::string> argv = opt.index_command;
  argv.push_back(opt.store);
  argv.push_back(opt.index_dir);
  ChildOptions co;
  co.max_output = 64 * 1024;
  co.stop = [this] { return stopping.load(); };
  auto done = run_child(argv, co);
  Status st;
  if (!done.ok()) {
    st = done.error();
  } else {
    *released = true;
    Status reloaded = index->reload();
    if (done->exit_code != 0) {
      st = Status::Unavailable(done->failure("the indexing worker"));
    } else {
      st = reloaded;
    }
  }
  if (stopping) return Status::Ok();
  if (!st.ok()) {
    worker_failed = st;
    worker_failed_commit = seen_commit;
    worker_failed_at = clock->now();
    return st;
  }
  worker_failed = Status::Ok();
  indexed_generation = s.generation;
  return Status::Ok();
}

void Kiosk::Impl::release_memory() {
  // Reading manifests and documents touched the pages of the store's map: hand them back to
  // the page cache (the data stays there; the next read maps it again). The sync, which shares
  // the map, touched pages too: its new versions are what made this refresh read.
  auto n = take_node();
  if (!n.ok()) return;
  (*n)->store().release_memory();
  give_node(std::move(n).value());
}

void Kiosk::Impl::watch(std::stop_token stop) {
  std::string last_error;
  while (!stop.stop_requested()) {
    Status st = refresh();
    if (!st.ok() && st.message() != last_error) {
      last_error = st.message();
      std::fprintf(stderr, "kiosk: %s\n", last_error.c_str());
    } else if (st.ok()) {
      last_error.clear();
    }
    std::unique_lock lock(wake_mu);
    wake.wait_for(lock, stop, std::chrono::milliseconds(opt.refresh_ms), [] { return false; });
  }
}

// ---- pages ----

std::string Kiosk::Impl::shell(const Messages& t, const KioskRequest& r, const std::string& title,
                               const std::string& main, const std::string& footer) {
  std::string self = r.path;
  std::string query;
  for (const auto& [k, v] : r.args) {
    if (k == "hl") continue;
    query += (query.empty() ? "?" : "&") + url_encode(k) + "=" +
             url_encode(valid_utf8(utf8_prefix(v, kMaxQueryBytes)));
  }
  self = url_encode(self, true) + query;
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"" + t.lang() + "\" dir=\"" + (t.rtl() ? "rtl" : "ltr") +
      "\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>" +
      escape_html(title) + " \xE2\x80\x94 " + escape_html(opt.site_name) +
      "</title>\n<link rel=\"stylesheet\" href=\"" + kStyleHref +
      "\">\n</head>\n<body>\n<a class=\"skip\" href=\"#main\">" +
      escape_html(t("Skip to the content")) + "</a>\n<header>\n<p class=\"site\"><a href=\"" +
      escape_html(link(r, "/")) + "\">" + escape_html(opt.site_name) + "</a></p>\n";
  out +=
      "<form class=\"search\" method=\"get\" action=\"/search\" role=\"search\">\n<label "
      "for=\"q\">" +
      escape_html(t("Search the documents")) +
      "</label>\n<input type=\"search\" id=\"q\" name=\"q\" value=\"" +
      (r.path == "/search" && r.arg("b").empty()
           ? escape_html(valid_utf8(utf8_prefix(r.arg("q"), kMaxQueryBytes)))
           : "") +
      "\">\n";
  if (!hl_query(r).empty()) {
    out += "<input type=\"hidden\" name=\"hl\" value=\"" + t.lang() + "\">\n";
  }
  out += "<button type=\"submit\">" + escape_html(t("Search")) + "</button>\n</form>\n";
  out += "<nav class=\"langs\" aria-label=\"" + escape_html(t("Language of the interface")) +
         "\">\n<ul>\n";
  for (const auto& l : languages()) {
    const std::string href = self + (query.empty() ? "?" : "&") + "hl=" + l;
    out += "<li><a href=\"" + escape_html(href) + "\" lang=\"" + l + "\" hreflang=\"" + l + "\"" +
           (l == t.lang() ? " aria-current=\"true\"" : "") + ">" + escape_html(language_name(l)) +
           "</a></li>\n";
  }
  out += "</ul>\n</nav>\n</header>\n<main id=\"main\">\n" + main + "</main>\n<footer>\n" + footer +
         "</footer>\n</body>\n</html>\n";
  return out;
}

std::string Kiosk::Impl::node_footer(const Messages& t, const Snapshot& s) {
  std::string out =
      "<p>" +
      escape_html(t.plural("This kiosk holds {count} document.",
                           "This kiosk holds {count} documents.", s.entries.size())) +
      " " + escape_html(fill(t("Last sync: {time}."), {{"time", time_of(s.last_sync)}})) + "</p>\n";
  const std::int64_t now = clock->now();
  if (s.last_sync > 0 && now - s.last_sync > opt.stale_after) {
    out += "<p class=\"warn\" role=\"note\">" +
           escape_html(t("Warning: this kiosk has not confirmed for a long time that its "
                         "documents are current. Newer versions may exist.")) +
           "</p>\n";
  }
  return out;
}

std::string Kiosk::Impl::bundle_footer(const Messages& t, const Entry& e) {
  const std::int64_t now = clock->now();
  std::string out = "<h2 class=\"prov\">" + escape_html(t("About this document")) +
                    "</h2>\n<dl class=\"prov\">\n";
  // Values in their own direction: a Latin name or a date inside an Arabic page stays whole.
  auto row = [&](const std::string& k, const std::string& v, const char* dir) {
    out += "<dt>" + escape_html(k) + "</dt><dd dir=\"" + dir + "\">" + escape_html(v) + "</dd>\n";
  };
  row(t("Publisher"), e.publisher(), "auto");
  row(t("Name"), e.info.name, "ltr");
  row(t("Version"), std::to_string(e.info.current), "ltr");
  row(t("Published"), time_of(e.info.published), "ltr");
  row(t("Signature"), t("signature verified"), "auto");
  row(t("Confirmed current as of"), time_of(e.info.confirmed), "ltr");
  out += "</dl>\n";
  if (e.info.confirmed > 0 && now - e.info.confirmed > opt.stale_after) {
    out += "<p class=\"warn\" role=\"note\">" +
           escape_html(fill(t("Warning: not confirmed current for {days} days. A newer version "
                              "may have been published since."),
                            {{"days", std::to_string((now - e.info.confirmed) / 86400)}})) +
           "</p>\n";
  }
  return out;
}

KioskResponse Kiosk::Impl::not_found(const Messages& t, const KioskRequest& r, const Snapshot& s,
                                     const std::string& what) {
  std::string main = "<h1>" + escape_html(t("Page not found")) + "</h1>\n<p>" +
                     escape_html(fill(t("There is no “{what}” on this kiosk. It may not have "
                                        "arrived yet, or the address may be mistyped."),
                                      {{"what", what}})) +
                     "</p>\n<p><a href=\"" + escape_html(link(r, "/")) + "\">" +
                     escape_html(t("See every document on this kiosk")) + "</a></p>\n";
  return html(404, shell(t, r, t("Page not found"), main, node_footer(t, s)));
}

KioskResponse Kiosk::Impl::home(const Messages& t, const KioskRequest& r, const Snapshot& s) {
  const std::string kind = r.arg("kind");
  const std::string doclang = r.arg("lang");
  std::set<std::string> kinds, langs;
  for (const auto& e : s.entries) {
    kinds.insert(e.info.kind);
    for (const auto& [l, p] : e.docs) langs.insert(l);
  }
  auto kind_name = [&](const std::string& k) {
    if (k == "resolution") return t("Resolutions");
    if (k == "indicator") return t("Indicators");
    return k;
  };
  std::string main = "<h1>" + escape_html(t("Documents on this kiosk")) + "</h1>\n";
  // What changed.
  main += "<section aria-labelledby=\"changes\">\n<h2 id=\"changes\">" +
          escape_html(t("What changed in the last sync")) + "</h2>\n";
  if (s.changes.empty()) {
    main += "<p>" + escape_html(t("Nothing has changed since the kiosk started.")) + "</p>\n";
  } else {
    main += "<ul>\n";
    std::size_t shown = 0;
    for (const auto& c : s.changes) {
      if (++shown > kChangesShown) break;
      const Entry* e = s.find(c.bundle);
      std::string what;
      if (c.to == 0)
        what = t("removed");
      else if (c.from == 0)
        what = t("new");
      else
        what = fill(t("updated from version {from} to {to}"),
                    {{"from", std::to_string(c.from)}, {"to", std::to_string(c.to)}});
      main += "<li>";
      if (e != nullptr) {
        main += "<a href=\"" + escape_html(link(r, "/b/" + url_encode(e->info.name, true))) +
                "\">" + escape_html(e->title()) + "</a>";
      } else {
        main += escape_html(c.bundle);
      }
      main += " \xE2\x80\x94 " + escape_html(what) + "</li>\n";
    }
    main += "</ul>\n";
    if (s.changes.size() > kChangesShown) {
      main += "<p>" +
              escape_html(t.plural("and {count} more.", "and {count} more.",
                                   s.changes.size() - kChangesShown)) +
              "</p>\n";
    }
  }
  main += "</section>\n";
  // Filters.
  main += "<form method=\"get\" action=\"/\" class=\"filters\">\n<fieldset><legend>" +
          escape_html(t("Show only")) + "</legend>\n<p><label for=\"f-kind\">" +
          escape_html(t("Kind")) +
          "</label>\n<select id=\"f-kind\" name=\"kind\">\n<option value=\"\">" +
          escape_html(t("All")) + "</option>\n";
  for (const auto& k : kinds) {
    main += "<option value=\"" + escape_html(k) + "\"" + (k == kind ? " selected" : "") + ">" +
            escape_html(kind_name(k)) + "</option>\n";
  }
  main += "</select></p>\n<p><label for=\"f-lang\">" + escape_html(t("Language of the document")) +
          "</label>\n<select id=\"f-lang\" name=\"lang\">\n<option value=\"\">" +
          escape_html(t("All")) + "</option>\n";
  for (const auto& l : langs) {
    main += "<option value=\"" + escape_html(l) + "\"" + (l == doclang ? " selected" : "") + ">" +
            escape_html(language_name(l)) + "</option>\n";
  }
  main += "</select></p>\n";
  if (!hl_query(r).empty())
    main += "<input type=\"hidden\" name=\"hl\" value=\"" + t.lang() + "\">\n";
  main += "<p><button type=\"submit\">" + escape_html(t("Show")) +
          "</button></p>\n</fieldset>\n</form>\n";
  // The lists, by kind, newest first.
  std::vector<std::string> order = {"resolution", "indicator"};
  for (const auto& k : kinds) {
    if (std::find(order.begin(), order.end(), k) == order.end()) order.push_back(k);
  }
  // A page stays light however many documents the node holds: the newest of each kind, and
  // the rest a page at a time under ?kind=.
  const std::size_t per_page = kind.empty() ? kListShort : kListPage;
  const std::size_t page = static_cast<std::size_t>(
      std::clamp<unsigned long long>(std::strtoull(r.arg("page").c_str(), nullptr, 10), 1, 100000));
  bool any = false;
  for (const auto& k : order) {
    if (!kind.empty() && k != kind) continue;
    std::string items;
    std::size_t matching = 0;
    for (const auto& e : s.entries) {
      if (e.info.kind != k) continue;
      if (!doclang.empty() && e.docs.count(doclang) == 0) continue;
      ++matching;
      if (matching <= (page - 1) * per_page || matching > page * per_page) continue;
      std::string href = "/b/" + url_encode(e.info.name, true);
      if (!doclang.empty()) href += "?lang=" + url_encode(doclang);
      items += "<li><a href=\"" + escape_html(link(r, href)) + "\" dir=\"auto\">" +
               escape_html(e.title()) + "</a><br><span class=\"meta\" dir=\"ltr\">";
      std::string symbol = e.meta_string("symbol");
      if (!symbol.empty()) items += escape_html(symbol) + " \xC2\xB7 ";
      items += escape_html(date_of(e.info.published));
      if (!e.docs.empty()) {
        items += " \xC2\xB7 ";
        bool first = true;
        for (const auto& [l, p] : e.docs) {
          items += (first ? "" : ", ") + escape_html(language_name(l));
          first = false;
        }
      }
      items += "</span></li>\n";
    }
    if (matching == 0) continue;
    any = true;
    main += "<section aria-labelledby=\"k-" + escape_html(k) + "\">\n<h2 id=\"k-" + escape_html(k) +
            "\">" + escape_html(kind_name(k)) + "</h2>\n<ul class=\"list\">\n" + items + "</ul>\n";
    auto list_link = [&](std::size_t p) {
      std::string href = "/?kind=" + url_encode(k);
      if (!doclang.empty()) href += "&lang=" + url_encode(doclang);
      if (p > 1) href += "&page=" + std::to_string(p);
      return escape_html(link(r, href));
    };
    if (kind.empty() && matching > per_page) {
      main +=
          "<p><a href=\"" + list_link(1) + "\">" +
          escape_html(fill(t("All {count} of this kind"), {{"count", std::to_string(matching)}})) +
          "</a></p>\n";
    } else if (!kind.empty() && matching > per_page) {
      main += "<nav class=\"pager\" aria-label=\"" + escape_html(t("Pages of the list")) + "\">";
      if (page > 1) {
        main += "<a rel=\"prev\" href=\"" + list_link(page - 1) + "\">" +
                escape_html(t("Previous")) + "</a> ";
      }
      if (page * per_page < matching) {
        main += "<a rel=\"next\" href=\"" + list_link(page + 1) + "\">" + escape_html(t("Next")) +
                "</a>";
      }
      main += "</nav>\n";
    }
    main += "</section>\n";
  }
  if (!any) main += "<p>" + escape_html(t("No document matches.")) + "</p>\n";
  return html(200, shell(t, r, t("Documents on this kiosk"), main, node_footer(t, s)));
}

KioskResponse Kiosk::Impl::bundle_page(const Messages& t, const KioskRequest& r, const Snapshot& s,
                                       const Entry& e) {
  if (!e.docs.empty()) return resolution(t, r, s, e);
  if (!e.csv.empty()) return indicator(t, r, s, e);
  std::string main = "<h1>" + escape_html(e.title()) + "</h1>\n<ul>\n";
  for (const auto& p : e.paths) {
    main += "<li><a href=\"" +
            escape_html(link(r, "/dl/" + url_encode(e.info.name, true) + "?p=" + url_encode(p))) +
            "\">" + escape_html(p) + "</a></li>\n";
  }
  main += "</ul>\n";
  return html(200, shell(t, r, e.title(), main, bundle_footer(t, e)));
}

KioskResponse Kiosk::Impl::resolution(const Messages& t, const KioskRequest& r, const Snapshot& s,
                                      const Entry& e) {
  std::string lang = r.arg("lang");
  if (e.docs.count(lang) == 0) lang = e.docs.count(t.lang()) ? t.lang() : "";
  if (lang.empty()) lang = e.docs.count("en") ? "en" : e.docs.begin()->first;
  const std::string& path = e.docs.at(lang);
  auto md = read_file(e.info.name, path, kMaxDocumentBytes);
  if (!md.ok()) return not_found(t, r, s, e.info.name + " " + path);
  MarkdownLabels labels{t("Notes"), t("Back to the text of note {n}"), t("Note {n}")};
  RenderedDocument doc = render_markdown(*md, labels);
  const std::string base = "/b/" + url_encode(e.info.name, true);
  std::string main =
      "<h1 dir=\"auto\">" + escape_html(e.title()) + "</h1>\n<p class=\"meta\" dir=\"auto\">";
  std::vector<std::string> facts;
  for (const char* k : {"symbol", "body", "adopted"}) {
    std::string v = e.meta_string(k);
    if (!v.empty()) facts.push_back(escape_html(v));
  }
  for (std::size_t i = 0; i < facts.size(); ++i) main += (i ? " \xC2\xB7 " : "") + facts[i];
  main += "</p>\n";
  if (std::string note = e.meta_string("note"); !note.empty()) {
    main += "<p class=\"note\" dir=\"auto\">" + escape_html(note) + "</p>\n";
  }
  if (e.docs.size() > 1) {
    main += "<nav class=\"doclangs\" aria-label=\"" +
            escape_html(t("This document in other languages")) + "\">\n<ul>\n";
    for (const auto& [l, p] : e.docs) {
      main += "<li><a href=\"" + escape_html(link(r, base + "?lang=" + l)) + "\" lang=\"" +
              escape_html(l) + "\" hreflang=\"" + escape_html(l) + "\"" +
              (l == lang ? " aria-current=\"true\"" : "") + ">" + escape_html(language_name(l)) +
              "</a></li>\n";
    }
    main += "</ul>\n</nav>\n";
  }
  main += "<ul class=\"actions\">\n<li><a href=\"" +
          escape_html(link(r, "/dl/" + url_encode(e.info.name, true) + "?p=" + url_encode(path))) +
          "\" download>" + escape_html(t("Download the text (plain text)")) + "</a></li>\n</ul>\n";
  main += "<form method=\"get\" action=\"/search\" class=\"search-in\">\n<label for=\"qin\">" +
          escape_html(t("Search in this document")) +
          "</label>\n<input type=\"search\" id=\"qin\" name=\"q\">\n<input type=\"hidden\" "
          "name=\"b\" value=\"" +
          escape_html(e.info.name) + "\">\n<input type=\"hidden\" name=\"lang\" value=\"" +
          escape_html(lang) + "\">\n";
  if (!hl_query(r).empty())
    main += "<input type=\"hidden\" name=\"hl\" value=\"" + t.lang() + "\">\n";
  main += "<button type=\"submit\">" + escape_html(t("Search")) + "</button>\n</form>\n";
  main += "<article class=\"doc\" lang=\"" + escape_html(lang) + "\" dir=\"" +
          (rtl_language(lang) ? "rtl" : "ltr") + "\">\n" + doc.html + "</article>\n";
  return html(200, shell(t, r, e.title(), main, bundle_footer(t, e)));
}

std::shared_ptr<const CsvTable> Kiosk::Impl::table(const Entry& e, Status* why) {
  const std::string key = e.info.name + "@" + std::to_string(e.info.current);
  {
    std::lock_guard lock(tables_mu);
    for (auto it = tables.begin(); it != tables.end(); ++it) {
      if (it->first == key) {
        tables.splice(tables.begin(), tables, it);
        return it->second;
      }
    }
  }
  auto text = read_file(e.info.name, e.csv, kMaxCsvBytes);
  if (!text.ok()) {
    *why = text.error();
    return nullptr;
  }
  auto t = std::make_shared<const CsvTable>(parse_csv(*text));
  std::lock_guard lock(tables_mu);
  tables.emplace_front(key, t);
  while (tables.size() > 2) tables.pop_back();
  return t;
}

KioskResponse Kiosk::Impl::indicator(const Messages& t, const KioskRequest& r, const Snapshot&,
                                     const Entry& e) {
  Status why;
  auto tab = table(e, &why);
  std::string main = "<h1 dir=\"auto\">" + escape_html(e.title()) + "</h1>\n";
  if (std::string d = e.meta_string("description"); !d.empty()) {
    main += "<p dir=\"auto\">" + escape_html(d) + "</p>\n";
  }
  main += "<ul class=\"actions\">\n<li><a href=\"" +
          escape_html(link(r, "/dl/" + url_encode(e.info.name, true) + "?p=" + url_encode(e.csv))) +
          "\" download>" + escape_html(t("Download the data (CSV)")) + "</a></li>\n</ul>\n";
  if (!tab) {
    main += "<p class=\"warn\">" +
            escape_html(t("The data cannot be shown here; download it instead.")) + "</p>\n";
  } else {
    IndicatorQuery q;
    q.area = r.arg("area");
    q.series = r.arg("series");
    q.period = r.arg("period");
    q.page = std::strtoull(r.arg("page").c_str(), nullptr, 10);
    IndicatorPage p = render_indicator(*tab, q, t, "/b/" + e.info.name, hl_query(r));
    main += p.filters + p.chart + p.table;
  }
  return html(200, shell(t, r, e.title(), main, bundle_footer(t, e)));
}

KioskResponse Kiosk::Impl::search(const Messages& t, const KioskRequest& r, const Snapshot& s) {
  const std::string raw = r.arg("q");
  SearchQuery q;
  q.text = raw;
  q.bundle = r.arg("b");
  q.language = r.arg("lang").empty() ? t.lang() : r.arg("lang");
  q.offset = static_cast<std::uint32_t>(
      std::min<unsigned long long>(std::strtoull(r.arg("start").c_str(), nullptr, 10), 1000));
  const Entry* within = q.bundle.empty() ? nullptr : s.find(q.bundle);
  if (!q.bundle.empty() && within == nullptr) return not_found(t, r, s, q.bundle);
  std::string main =
      "<h1>" +
      escape_html(within != nullptr ? fill(t("Search in {title}"), {{"title", within->title()}})
                                    : t("Search")) +
      "</h1>\n";
  if (within != nullptr) {
    main += "<form method=\"get\" action=\"/search\">\n<label for=\"qin\">" +
            escape_html(t("Search in this document")) +
            "</label>\n<input type=\"search\" id=\"qin\" name=\"q\" value=\"" +
            escape_html(valid_utf8(utf8_prefix(raw, kMaxQueryBytes))) +
            "\">\n<input type=\"hidden\" name=\"b\" value=\"" + escape_html(q.bundle) + "\">\n";
    if (!hl_query(r).empty())
      main += "<input type=\"hidden\" name=\"hl\" value=\"" + t.lang() + "\">\n";
    main += "<button type=\"submit\">" + escape_html(t("Search")) + "</button>\n</form>\n";
  }
  if (raw.size() > kMaxQueryBytes) {
    main += "<p class=\"note\">" +
            escape_html(fill(t("Only the first {n} bytes of the search were used."),
                             {{"n", std::to_string(kMaxQueryBytes)}})) +
            "</p>\n";
  }
  SearchResults res = index->search(q);
  if (res.problem == "words") {
    main += "<p class=\"note\">" +
            escape_html(t("The search could not be read as written (quotes or operators); its "
                          "words were searched.")) +
            "</p>\n";
  } else if (res.problem == "unavailable") {
    main += "<p class=\"warn\">" +
            escape_html(t("Search is not available yet: the index is being built. Try again in a "
                          "minute.")) +
            "</p>\n";
  } else if (index_behind(s)) {
    main += "<p class=\"note\">" +
            escape_html(t("Search is still adding the newest documents: some may not be found "
                          "yet. Try again in a minute.")) +
            "</p>\n";
  }
  if (raw.find_first_not_of(" \t\r\n") == std::string::npos) {
    main += "<p>" + escape_html(t("Type words to search for, then press Search.")) + "</p>\n";
  } else if (res.hits.empty()) {
    main += "<p>" + escape_html(t("No document matches the search.")) + "</p>\n";
  } else {
    main += "<p>" +
            escape_html(t.plural("About {count} result", "About {count} results", res.estimated)) +
            "</p>\n<ol class=\"hits\" start=\"" + std::to_string(q.offset + 1) + "\">\n";
    for (const auto& h : res.hits) {
      const Entry* e = s.find(h.bundle);
      std::string href = "/b/" + url_encode(h.bundle, true) + "?lang=" + url_encode(h.language);
      href = link(r, href);
      if (!h.anchor.empty()) href += "#" + h.anchor;
      std::string where;
      if (h.anchor.size() > 1 && h.anchor[0] == 'p' && h.anchor[1] != 'p') {
        where = fill(t("Paragraph {n}"), {{"n", h.anchor.substr(1)}});
      } else if (h.anchor.rfind("fn", 0) == 0) {
        where = fill(t("Note {n}"), {{"n", h.anchor.substr(2)}});
      } else if (!h.anchor.empty()) {
        where = t("Preamble");
      }
      const std::string title = e != nullptr ? e->title() : h.title;
      // Within one document the paragraph is the link; over all, the document's title.
      const std::string label = q.bundle.empty() || where.empty() ? title : where;
      main +=
          "<li><a href=\"" + escape_html(href) + "\" dir=\"auto\">" + escape_html(label) + "</a>\n";
      if (q.bundle.empty() && !where.empty()) {
        main += "<span class=\"meta\">" + escape_html(where) + "</span>\n";
      }
      main += "<p class=\"snippet\" lang=\"" + escape_html(h.language) + "\" dir=\"" +
              (rtl_language(h.language) ? "rtl" : "ltr") + "\">" + h.snippet_html + "</p></li>\n";
    }
    main += "</ol>\n";
    if (res.estimated > q.offset + res.hits.size() && q.offset + 10 < 1000) {
      std::string next = "/search?q=" + url_encode(valid_utf8(utf8_prefix(raw, kMaxQueryBytes))) +
                         "&start=" + std::to_string(q.offset + 10);
      if (!q.bundle.empty()) next += "&b=" + url_encode(q.bundle);
      main += "<p><a rel=\"next\" href=\"" + escape_html(link(r, next)) + "\">" +
              escape_html(t("More results")) + "</a></p>\n";
    }
  }
  return html(
      200, shell(t, r, t("Search"), main, within ? bundle_footer(t, *within) : node_footer(t, s)));
}

KioskResponse Kiosk::Impl::download(const Messages& t, const KioskRequest& r, const Snapshot& s) {
  const std::string name = r.path.substr(4);
  const Entry* e = s.find(name);
  const std::string path = r.arg("p");
  if (e == nullptr || std::find(e->paths.begin(), e->paths.end(), path) == e->paths.end()) {
    return not_found(t, r, s, name + (path.empty() ? "" : " " + path));
  }
  auto data = read_file(name, path, kMaxCsvBytes);
  if (!data.ok()) return not_found(t, r, s, name + " " + path);
  KioskResponse resp;
  std::string type = "application/octet-stream";
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".md") == 0)
    type = "text/plain; charset=utf-8";
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".csv") == 0)
    type = "text/csv; charset=utf-8";
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".txt") == 0)
    type = "text/plain; charset=utf-8";
  resp.content_type = type;
  std::string file = path.substr(path.rfind('/') + 1);
  std::string safe;
  for (char c : file)
    safe +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  if (type.rfind("text/plain", 0) == 0 && safe.size() > 3 &&
      safe.compare(safe.size() - 3, 3, ".md") == 0) {
    safe = safe.substr(0, safe.size() - 3) + ".txt";
  }
  resp.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + safe + "\"");
  resp.body = std::move(data).value();
  return resp;
}

KioskResponse Kiosk::Impl::route(const KioskRequest& r, const Messages& t, const Snapshot& s) {
  if (r.path == "/") return home(t, r, s);
  if (r.path == "/search") return search(t, r, s);
  if (r.path.rfind("/b/", 0) == 0) {
    const Entry* e = s.find(std::string_view(r.path).substr(3));
    if (e == nullptr) return not_found(t, r, s, r.path.substr(3));
    return bundle_page(t, r, s, *e);
  }
  if (r.path.rfind("/dl/", 0) == 0) return download(t, r, s);
  return not_found(t, r, s, r.path);
}

KioskResponse Kiosk::Impl::handle(const KioskRequest& r) {
  if (r.method != "GET" && r.method != "HEAD") {
    KioskResponse resp;
    resp.status = 405;
    resp.content_type = "text/plain; charset=utf-8";
    resp.headers.emplace_back("Allow", "GET, HEAD");
    resp.body = "405 method not allowed: the kiosk only reads (GET, HEAD)\n";
    return resp;
  }
  const bool gz_ok = accepts_gzip(r.header("accept-encoding"));
  std::shared_ptr<const Cached> c;
  std::string key;
  if (r.path == kStyleHref) {
    static const std::shared_ptr<const Cached> style = [] {
      auto x = std::make_shared<Cached>();
      x->plain.content_type = "text/css; charset=utf-8";
      x->plain.body = std::string(kStyle);
      x->plain.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
      x->etag = "\"" + hex64(fnv1a(x->plain.body)) + "\"";
      return x;
    }();
    c = style;
  } else {
    // The language: ?hl=, else Accept-Language.
    std::string lang = r.arg("hl");
    if (std::find(languages().begin(), languages().end(), lang) == languages().end()) {
      lang = negotiate(r.header("accept-language"));
    }
    auto s = snapshot();
    // A search page while the index is behind is made for this request only.
    const bool fresh_only = r.path == "/search" && index_behind(*s);
    key = std::to_string(s->generation) + "\n" + lang + "\n" + std::to_string(clock->now() / 600) +
          "\n" + r.path;
    for (const auto& [k, v] : r.args) key += "\n" + k + "=" + v;
    {
      std::lock_guard lock(cache_mu);
      auto it = cache.find(key);
      if (it != cache.end()) {
        lru.splice(lru.begin(), lru, it->second);
        c = it->second->second;
      }
    }
    if (!c) {
      Messages t(catalog(lang));
      auto x = std::make_shared<Cached>();
      x->plain = route(r, t, *s);
      x->plain.headers.emplace_back("Content-Language", lang);
      x->plain.headers.emplace_back("Vary", "Accept-Language, Accept-Encoding");
      x->plain.headers.emplace_back("Cache-Control", x->plain.status == 200 && !fresh_only
                                                         ? "public, max-age=60"
                                                         : "no-cache");
      x->etag = "\"" + hex64(fnv1a(x->plain.body)) + "\"";
      c = x;
      // Counted with room for its gzip form, made later.
      const std::size_t size = x->plain.body.size() * 3 / 2 + key.size();
      if (size < kPageCacheBytes / 8 && !fresh_only) {
        std::lock_guard lock(cache_mu);
        if (cache.find(key) == cache.end()) {
          lru.emplace_front(key, c);
          cache[key] = lru.begin();
          cache_bytes += size;
          while (cache_bytes > kPageCacheBytes && !lru.empty()) {
            auto& last = lru.back();
            cache_bytes -= last.second->plain.body.size() * 3 / 2 + last.first.size();
            cache.erase(last.first);
            lru.pop_back();
          }
        }
      }
    }
  }
  KioskResponse resp;
  resp.status = c->plain.status;
  resp.content_type = c->plain.content_type;
  resp.headers = c->plain.headers;
  resp.headers.emplace_back("Content-Security-Policy", kCsp);
  resp.headers.emplace_back("X-Content-Type-Options", "nosniff");
  resp.headers.emplace_back("Referrer-Policy", "no-referrer");
  const bool gz = gz_ok && !c->gzipped().empty();
  const std::string etag = gz ? c->etag.substr(0, c->etag.size() - 1) + "-gz\"" : c->etag;
  if (resp.status == 200) resp.headers.emplace_back("ETag", etag);
  const std::string inm = r.header("if-none-match");
  if (resp.status == 200 && !inm.empty() && (inm == "*" || inm.find(etag) != std::string::npos)) {
    resp.status = 304;
    return resp;
  }
  if (gz) {
    resp.headers.emplace_back("Content-Encoding", "gzip");
    resp.body = c->gzipped();
  } else {
    resp.body = c->plain.body;
  }
  return resp;
}

// ---- Kiosk ----

Kiosk::Kiosk(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Kiosk::~Kiosk() {
  if (impl_ && impl_->watcher.joinable()) {
    impl_->stopping = true;
    impl_->watcher.request_stop();
    impl_->watcher.join();
  }
}

Result<std::unique_ptr<Kiosk>> Kiosk::open(const KioskOptions& options) {
  // Two malloc arenas for the process instead of glibc's 8 per core: every arena a thread
  // touched keeps its own free pages and fragments, and on a Pi the idle daemon's memory is
  // the kiosk's budget (docs/BENCHMARKS.md, "Kiosk"). Set before the daemon starts its
  // server threads; arenas made earlier stay.
  mallopt(M_ARENA_MAX, 2);
  // Fixed thresholds instead of glibc's sliding ones. Freeing one large buffer raises the
  // mmap threshold and with it the trim threshold (up to 64 MB), and past that point the
  // free top of a thread's arena is never handed back: not on free, and not by malloc_trim,
  // which leaves a secondary arena's top alone. After a library's first sync, indexed while
  // the sync still ran, the idle daemon then kept 8-15 MiB of such free memory in one run of
  // two or three (docs/BENCHMARKS.md, "Kiosk"). Buffers over 256 KB get their own mapping,
  // returned when freed; a free top over 1 MB goes back at once.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  impl->clock = options.clock != nullptr ? options.clock : &system_clock();
  if (impl->opt.index_dir.empty()) impl->opt.index_dir = options.store + "/kiosk-index";
  {
    auto n = impl->take_node();
    if (!n.ok()) return n.error().With("the kiosk opening the store " + options.store);
    impl->give_node(std::move(n).value());
  }
  auto index = SearchIndex::open(impl->opt.index_dir);
  if (!index.ok()) return index.error();
  impl->index = std::move(index).value();
  {
    auto seeded = std::make_shared<Snapshot>();
    read_changes_note(impl->index->note("changes"), seeded.get());
    impl->snap = std::move(seeded);
  }
  Impl* raw = impl.get();
  std::unique_ptr<Kiosk> k(new Kiosk(std::move(impl)));
  raw->watcher = std::jthread([raw](std::stop_token stop) { raw->watch(stop); });
  return k;
}

KioskResponse Kiosk::handle(const KioskRequest& request) { return impl_->handle(request); }

Status Kiosk::refresh() { return impl_->refresh(); }

Status Kiosk::index_store(const KioskOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  impl->opt.index_command.clear();
  impl->clock = options.clock != nullptr ? options.clock : &system_clock();
  if (impl->opt.index_dir.empty()) impl->opt.index_dir = options.store + "/kiosk-index";
  auto index = SearchIndex::open(impl->opt.index_dir);
  if (!index.ok()) return index.error();
  impl->index = std::move(index).value();
  bool released = false;
  return impl->refresh_pass(&released);
}

}  // namespace outpost::kiosk

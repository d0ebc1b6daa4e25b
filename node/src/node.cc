#include "outpost/node/node.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "node_internal.h"
#include "node_records.h"
#include "outpost/base/fs.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/tuf.h"
#include "outpost/node/chunk_store.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/manifest.h"
#include "outpost/storage/store.h"
#include "outpost/sync/http.h"
#include "outpost/sync/pack_source.h"
#include "outpost/sync/source.h"
#include "repo_sync.h"
#include "sync_lock.h"

namespace outpost::node {

namespace tuf = crypto::tuf;
using packaging::ChunkIndex;
using packaging::Manifest;
using storage::Table;

using namespace detail;

Node::~Node() = default;

Result<std::unique_ptr<Node>> Node::open(const NodeOptions& options) {
  storage::StoreOptions so;
  so.dir = options.dir;
  so.create = options.create && !options.read_only;
  so.read_only = options.read_only;
  OUTPOST_ASSIGN_OR_RETURN(auto store, storage::Store::open(so));
  std::unique_ptr<Node> node(new Node());
  node->store_ = std::move(store);
  node->clock_ = options.clock != nullptr ? options.clock : &system_clock();
  node->fs_ = options.fs != nullptr ? options.fs : &real_fs();
  return node;
}

Result<std::unique_ptr<Node>> Node::open(const std::string& dir, bool create, Clock& clock) {
  return open(NodeOptions{.dir = dir, .create = create, .read_only = false, .clock = &clock});
}

namespace {

bool is_http(const std::string& location) {
  return location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0;
}

Result<std::unique_ptr<sync::Source>> open_with(const std::string& location,
                                                const HttpOptions& http) {
  return sync::open_source(location, http);
}

std::string day_period(std::int64_t now) { return "day:" + format_utc(now).substr(0, 10); }
std::string month_period(std::int64_t now) { return "month:" + format_utc(now).substr(0, 7); }

Result<DataBudget> read_budget(const storage::ReadTxn& txn, std::int64_t now) {
  DataBudget b;
  OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kSettings, as_bytes(records::kBudgetKey)));
  if (v) {
    auto j = parse_json(as_chars(view(*v)));
    if (!j.ok()) return Status::Corruption("the data budget in the store is damaged: set it again");
    if (auto d = j->get_int("day"); d.ok() && *d > 0) b.day = static_cast<std::uint64_t>(*d);
    if (auto m = j->get_int("month"); m.ok() && *m > 0) b.month = static_cast<std::uint64_t>(*m);
  }
  OUTPOST_ASSIGN_OR_RETURN(auto d,
                           txn.get(Table::kSettings, view(records::usage_key(day_period(now)))));
  OUTPOST_ASSIGN_OR_RETURN(auto m,
                           txn.get(Table::kSettings, view(records::usage_key(month_period(now)))));
  b.used_day = records::get_u64(d).value_or(0);
  b.used_month = records::get_u64(m).value_or(0);
  return b;
}

std::uint64_t budget_left(const DataBudget& b) {
  std::uint64_t left = UINT64_MAX;
  if (b.day) left = std::min(left, b.day > b.used_day ? b.day - b.used_day : 0);
  if (b.month) left = std::min(left, b.month > b.used_month ? b.month - b.used_month : 0);
  return left;
}

Status add_usage(storage::WriteTxn& txn, std::int64_t now, std::uint64_t bytes) {
  for (const std::string& period : {day_period(now), month_period(now)}) {
    Bytes key = records::usage_key(period);
    OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kSettings, view(key)));
    OUTPOST_RETURN_IF_ERROR(
        txn.put(Table::kSettings, view(key),
                view(records::u64_value(records::get_u64(v).value_or(0) + bytes))));
  }
  return Status::Ok();
}

}  // namespace

Status Node::set_budget(std::uint64_t day, std::uint64_t month) {
  Json j = Json::object();
  j.set("day", static_cast<std::int64_t>(day));
  j.set("month", static_cast<std::int64_t>(month));
  return store_->update([&](storage::WriteTxn& txn) {
    return txn.put(Table::kSettings, as_bytes(records::kBudgetKey), as_bytes(j.canonical()));
  });
}

Result<DataBudget> Node::budget() {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  return read_budget(txn, clock_->now());
}

namespace {

// A local path as an absolute one: a subscription is used later from another folder (cron,
// the daemon). URLs are kept as given.
std::string absolute_location(const std::string& location) {
  if (location.find("://") != std::string::npos || location.empty() || location[0] == '/') {
    return location;
  }
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(location, ec);
  return ec ? location : abs.lexically_normal().string();
}

// The rank patterns of a subscription record; one that no longer checks (a record written by
// a later version) is left out rather than matching something unintended.
std::vector<std::string> stored_ranks(const Json& record) {
  std::vector<std::string> out;
  if (const Json* r = record.find("ranks"); r != nullptr && r->is_array()) {
    for (const Json& e : r->as_array()) {
      if (e.is_string() && check_rank_pattern(e.as_string()).ok()) out.push_back(e.as_string());
    }
  }
  return out;
}

}  // namespace

Result<Subscription> Node::subscribe(const std::string& given, const SubscribeOptions& given_opts) {
  if (given_opts.ranks) {
    for (const auto& pattern : *given_opts.ranks)
      OUTPOST_RETURN_IF_ERROR(check_rank_pattern(pattern));
  }
  const std::string location = absolute_location(given);
  SubscribeOptions options = given_opts;
  for (auto& m : options.mirrors) m = absolute_location(m);
  // The first location that answers and verifies; the subscription records them all.
  std::vector<std::string> from = {location};
  from.insert(from.end(), options.mirrors.begin(), options.mirrors.end());
  from.insert(from.end(), options.extra_sources.begin(), options.extra_sources.end());
  Status last;
  // With several locations, a first round asks each once, without retries: a mirror that is
  // down costs a refused connection, not a minute of backoff before the next is asked. Only
  // when none answered are they asked again with the retries and backoff given.
  const bool quick_round = from.size() > 1 && options.http.retries > 0;
  for (int round = quick_round ? 0 : 1; round < 2; ++round) {
    SubscribeOptions these = options;
    if (round == 0) these.http.retries = 0;
    bool all_unavailable = true;
    for (const auto& at : from) {
      auto sub = subscribe_from(at, location, these);
      if (sub.ok() || sub.error().code() == Code::kInvalidArgument) return sub;
      last = sub.error();
      all_unavailable = all_unavailable && last.code() == Code::kUnavailable;
    }
    // A location that answered and failed verification is not asked again.
    if (!all_unavailable) break;
  }
  if (from.size() == 1) return last;
  return Status(last.code(), "all " + std::to_string(from.size()) +
                                 " locations failed; the last: " + last.message());
}

Result<Subscription> Node::subscribe_from(const std::string& source_location,
                                          const std::string& location,
                                          const SubscribeOptions& options) {
  std::unique_ptr<sync::Source> own;
  sync::Source* source = source_location == location ? options.opened : nullptr;
  if (source == nullptr) {
    OUTPOST_ASSIGN_OR_RETURN(own, open_with(source_location, options.http));
    source = own.get();
  }
  Bytes root_bytes;
  if (!options.root_json_path.empty()) {
    OUTPOST_ASSIGN_OR_RETURN(root_bytes, real_fs().read_file(options.root_json_path, 512 * 1024));
  } else if (options.root_pubkey) {
    auto first = source->fetch("1.root.json", 512 * 1024);
    if (!first.ok()) return first.error().With("reading the first root of " + source_location);
    root_bytes = std::move(*first);
  } else {
    return Status::InvalidArgument("subscribe needs --root-pubkey HEX or --root ROOT_JSON");
  }
  auto envelope = tuf::parse_metadata(view(root_bytes), "root");
  if (!envelope.ok()) return envelope.error().With("root metadata");
  const Json* signed_part = envelope->find("signed");
  OUTPOST_ASSIGN_OR_RETURN(tuf::Root root, tuf::Root::from_signed(*signed_part));
  auto role = root.roles.find("root");
  if (role == root.roles.end()) return Status::Corruption("root metadata has no root role");
  OUTPOST_RETURN_IF_ERROR(tuf::verify_threshold(*envelope, root.keys, role->second, "root"));
  if (options.root_pubkey) {
    // The pinned key must be one of the root keys and must have signed this root.
    std::string keyid = options.root_pubkey->keyid();
    for (const auto& [id, key] : root.keys) {
      if (key == *options.root_pubkey) keyid = id;  // ids hash the key object as written
    }
    bool listed = std::find(role->second.keyids.begin(), role->second.keyids.end(), keyid) !=
                  role->second.keyids.end();
    tuf::RoleKeys only{{keyid}, 1};
    if (!listed || !tuf::verify_threshold(*envelope, root.keys, only, "root").ok()) {
      return Status::VerificationFailed(
          "the root of " + location + " is not signed by the root key " +
          options.root_pubkey->hex() + ": check the key with the publisher");
    }
  }
  std::string repo = repo_id_for(root);
  tuf::TrustedMetadata trusted;
  trusted.root = root_bytes;
  // Walk the whole chain now, so a subscription is only recorded for a repository that
  // verifies; sync does it again and fetches content.
  OUTPOST_ASSIGN_OR_RETURN(auto rtxn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(std::int64_t floor, time_floor(rtxn));
  OUTPOST_ASSIGN_OR_RETURN(auto existing, rtxn.get(Table::kSubscriptions, as_bytes(repo)));
  end(rtxn);
  std::int64_t now = std::max(clock_->now(), floor);
  tuf::UpdaterOptions uopt;
  uopt.now = now;
  uopt.accept_expired_timestamp = options.accept_expired_timestamp;
  tuf::Updater updater(trusted, *source, uopt);
  OUTPOST_RETURN_IF_ERROR(updater.refresh().With("checking " + source_location));

  Subscription sub{repo, location, options.mirrors,
                   now,  0,        options.ranks.value_or(std::vector<std::string>{})};
  if (existing) {
    auto j = parse_json(as_chars(view(*existing)));
    if (j.ok()) {
      sub.added = j->get_int("added").ok() ? *j->get_int("added") : now;
      sub.last_sync = j->get_int("last_sync").ok() ? *j->get_int("last_sync") : 0;
      // Subscribing again without a ranking keeps the one the repository has.
      if (!options.ranks) sub.ranks = stored_ranks(*j);
    }
  }
  for (const auto& m : sub.mirrors) {
    if (!is_http(m) && m.rfind("/", 0) != 0 && m.rfind("file://", 0) != 0) {
      return Status::InvalidArgument("mirror '" + m +
                                     "' is neither an http(s) URL nor an absolute path");
    }
  }
  OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
    if (!existing) {
      // A repository seen for the first time: trust starts at the verified chain.
      OUTPOST_RETURN_IF_ERROR(save_trusted(txn, repo, updater.trusted()));
    }
    OUTPOST_RETURN_IF_ERROR(raise_time_floor(txn, now));
    return txn.put(Table::kSubscriptions, as_bytes(repo),
                   view(records::encode_subscription(repo, location, sub.added, sub.last_sync,
                                                     sub.mirrors, sub.ranks)));
  }));
  return sub;
}

Result<std::vector<Subscription>> Node::subscriptions() {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  std::vector<Subscription> out;
  Status bad = Status::Ok();
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kSubscriptions, {}, [&](ByteView, ByteView v) {
    auto j = parse_json(as_chars(v));
    if (!j.ok() || !j->get_string("id").ok() || !j->get_string("location").ok()) {
      bad = Status::Corruption("a subscription record in the store is damaged: subscribe again");
      return false;
    }
    Subscription s;
    s.id = *j->get_string("id");
    s.location = *j->get_string("location");
    s.added = j->get_int("added").ok() ? *j->get_int("added") : 0;
    s.last_sync = j->get_int("last_sync").ok() ? *j->get_int("last_sync") : 0;
    if (const Json* m = j->find("mirrors"); m != nullptr && m->is_array()) {
      for (const Json& e : m->as_array()) {
        if (e.is_string()) s.mirrors.push_back(e.as_string());
      }
    }
    s.ranks = stored_ranks(*j);
    out.push_back(std::move(s));
    return true;
  }));
  OUTPOST_RETURN_IF_ERROR(bad);
  return out;
}

Result<std::vector<SyncReport>> Node::sync(const std::string& location,
                                           const SyncOptions& options) {
  OUTPOST_ASSIGN_OR_RETURN(auto subs, subscriptions());
  if (subs.empty()) {
    return Status::FailedPrecondition(
        "this store has no subscriptions: run 'outpost subscribe PATH --root-pubkey HEX' first");
  }
  std::vector<SyncReport> reports;
  std::uint64_t spent_here = 0;  // on links, by this call (SyncOptions::budget)
  for (auto& sub : subs) {
    // The subscription's ranking, unless the caller gives one for this repository.
    SyncOptions repo_options = options;
    repo_options.bundle_ranks.emplace(sub.id, sub.ranks);
    std::vector<std::string> locations;
    if (location.empty()) {
      locations.push_back(sub.location);
      locations.insert(locations.end(), sub.mirrors.begin(), sub.mirrors.end());
    } else {
      locations.push_back(location);
    }
    // One sync of a repository at a time: a second would fetch and charge the same bytes.
    OUTPOST_ASSIGN_OR_RETURN(
        SyncLock lock, SyncLock::acquire(store_->dir(), sub.id, options.lock_wait_s, options.stop));
    std::optional<SyncReport> done;
    std::vector<std::string> skipped;
    Status last;
    for (std::size_t at = 0; at < locations.size(); ++at) {
      const std::string& from = locations[at];
      const bool more = at + 1 < locations.size();
      if (sync::looks_like_stick(from)) {
        // A pack carries the content a have-file asked for in its own records, which only an
        // import reads: a sync would trust the stick's metadata and then find no content.
        last = Status::FailedPrecondition(
            from + " is a USB pack, which a sync cannot take content from: bring it in with " +
            "'outpost import " + from + "'");
        skipped.push_back(from + ": a USB pack (use 'outpost import')");
        continue;
      }
      const std::int64_t now = clock_->now();
      DataBudget budget;
      Bytes limits_key;
      {
        OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
        OUTPOST_ASSIGN_OR_RETURN(budget, read_budget(txn, now));
      }
      std::uint64_t left = budget_left(budget);
      if (options.budget != 0) {
        left = std::min(left, options.budget > spent_here ? options.budget - spent_here : 0);
      }
      HttpOptions http = options.http;
      http.stop = options.stop;
      auto source = open_with(from, http);
      if (!source.ok()) {
        last = source.error().With(from);
        skipped.push_back(from + ": " + source.error().message());
        continue;
      }
      sync::Source& raw = **source;
      // What was learned about this server on earlier runs (multi-range support).
      if (!raw.origin().empty()) {
        limits_key = records::limits_key(raw.origin());
        OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
        OUTPOST_ASSIGN_OR_RETURN(auto v, txn.get(Table::kSettings, view(limits_key)));
        if (v) {
          auto j = parse_json(as_chars(view(*v)));
          if (j.ok()) raw.set_limits(sync::ServerLimits::from_json(*j));
        }
      }
      // The budget is also a hard cap mid-transfer: sync never spends more than is left.
      sync::MeteredSource metered(raw, left);
      metered.set_guard([&options](const sync::TransferStats&) {
        return options.stop.stop_requested() ? Status::Cancelled("sync stopped on request")
                                             : Status::Ok();
      });
      const std::uint64_t before = raw.stats().total();
      auto report = sync_repository(*store_, metered, sub.id, from, now, repo_options);
      // What was spent is spent, and what was learned about the server holds, either way.
      // Only links are metered: a local path or a stick costs nothing.
      std::uint64_t spent = raw.metered() ? raw.stats().total() - before : 0;
      spent_here += spent;
      OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
        if (spent > 0 && !options.dry_run) OUTPOST_RETURN_IF_ERROR(add_usage(txn, now, spent));
        if (!limits_key.empty() && raw.limits_changed()) {
          OUTPOST_RETURN_IF_ERROR(txn.put(Table::kSettings, view(limits_key),
                                          as_bytes(raw.limits().to_json().canonical())));
        }
        return Status::Ok();
      }));
      if (report.ok()) {
        // Bundles this source could not complete may still come from the next one; what it
        // completed is committed and will not be fetched again.
        std::vector<SyncItem> earlier = done ? std::move(done->updated) : std::vector<SyncItem>{};
        report->updated.insert(report->updated.begin(), earlier.begin(), earlier.end());
        done = std::move(*report);
        if (!done->partial() || options.dry_run || !more) break;
        skipped.push_back(
            from + ": " + std::to_string(done->failed.size()) +
            " bundle(s) could not be completed: " + done->failed.front().why.message());
        continue;
      }
      last = report.error().With("syncing " + from);
      // A full disk, an exhausted budget or a stop request is the same on every mirror; so
      // is a usage error.
      if (report.error().IsResourceExhausted() || report.error().IsCancelled() ||
          report.error().code() == Code::kInvalidArgument) {
        return last;
      }
      skipped.push_back(from + ": " + report.error().message());
    }
    if (!done) {
      // A location given on the command line may belong to another subscription.
      if (!location.empty() && subs.size() > 1 && last.IsVerificationFailed()) continue;
      if (locations.size() == 1) return last;
      return Status(last.code(), "all " + std::to_string(locations.size()) +
                                     " sources failed; the last: " + last.message());
    }
    done->skipped_sources = std::move(skipped);
    reports.push_back(std::move(*done));
    if (options.dry_run) continue;
    sub.last_sync = clock_->now();
    OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
      return txn.put(Table::kSubscriptions, as_bytes(sub.id),
                     view(records::encode_subscription(sub.id, sub.location, sub.added,
                                                       sub.last_sync, sub.mirrors, sub.ranks)));
    }));
  }
  return reports;
}

Result<std::vector<BundleInfo>> Node::list() {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  std::vector<std::pair<std::string, records::BundleRecord>> recs;
  Status bad = Status::Ok();
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
    auto r = records::parse_bundle(v);
    if (!r.ok()) {
      bad = r.error().With("bundle record " + std::string(as_chars(k)));
      return false;
    }
    recs.emplace_back(std::string(as_chars(k)), std::move(*r));
    return true;
  }));
  OUTPOST_RETURN_IF_ERROR(bad);
  std::vector<BundleInfo> out;
  for (auto& [name, r] : recs) {
    Bytes key = storage::version_key(name, r.current);
    OUTPOST_ASSIGN_OR_RETURN(auto m, get_file(txn, Table::kManifests, view(key)));
    if (!m)
      return Status::Corruption("the manifest of " + name + " is missing: run 'outpost verify'");
    OUTPOST_ASSIGN_OR_RETURN(Manifest manifest, Manifest::parse(view(*m)));
    BundleInfo info;
    info.name = name;
    info.repo = r.repo;
    info.kind = manifest.kind;
    if (const Json* t = manifest.meta.find("title"); t && t->is_string())
      info.title = t->as_string();
    info.current = r.current;
    info.versions = r.versions;
    info.files = manifest.files.size();
    info.size = manifest.content_size;
    info.published = manifest.published;
    info.confirmed = r.confirmed;
    out.push_back(std::move(info));
  }
  return out;
}

Result<Json> Node::show(const std::string& bundle, std::uint64_t version) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
  if (!rec)
    return Status::NotFound("no bundle named " + bundle + " in this store: see 'outpost ls'");
  std::uint64_t v = version == 0 ? rec->current : version;
  OUTPOST_ASSIGN_OR_RETURN(auto m,
                           get_file(txn, Table::kManifests, view(storage::version_key(bundle, v))));
  if (!m) {
    return Status::NotFound("version " + std::to_string(v) + " of " + bundle + " is not held here");
  }
  OUTPOST_ASSIGN_OR_RETURN(Json j, parse_json(as_chars(view(*m))));
  j.set("held_versions", [&] {
    Json a = Json::array();
    for (auto x : rec->versions) a.push(Json(x));
    return a;
  }());
  j.set("confirmed", format_utc(rec->confirmed));
  return j;
}

Status Node::cat(const std::string& bundle, const std::string& path,
                 const std::function<Status(ByteView)>& out) {
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
  if (!rec)
    return Status::NotFound("no bundle named " + bundle + " in this store: see 'outpost ls'");
  OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(txn, bundle, rec->current));
  const auto& files = held.manifest.files;
  auto it = std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.path == path; });
  if (it == files.end()) {
    return Status::NotFound("bundle " + bundle + " has no file " + path + ": see 'outpost show " +
                            bundle + "'");
  }
  auto target = static_cast<std::size_t>(it - files.begin());
  std::size_t first = 0;
  for (std::size_t f = 0; f < target; ++f) first += held.index.file_chunks[f];
  packaging::Decompressor dec;
  PageBudget pages(*store_);
  for (std::uint32_t c = 0; c < held.index.file_chunks[target]; ++c) {
    OUTPOST_ASSIGN_OR_RETURN(Bytes raw, read_chunk(txn, dec, held.index.chunks[first + c]));
    pages.add(raw.size());
    OUTPOST_RETURN_IF_ERROR(out(view(raw)));
  }
  return Status::Ok();
}

namespace {

// The same error, its message prefixed with what was being done, so the folder is named.
Status in_checkout(const std::string& dir, const Status& s) {
  if (s.ok()) return s;
  return Status(s.code(), "checkout into " + dir + ": " + s.message());
}

// Creates dir/a/b/... one level at a time, refusing any component that is a symlink, so a
// checkout can never write outside dir.
Status make_safe_dirs(FileSystem& fs, const std::string& base, const std::string& rel) {
  std::string cur = base;
  std::size_t pos = 0;
  while (true) {
    std::size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) return Status::Ok();
    cur = join_path(cur, rel.substr(pos, slash - pos));
    auto st = fs.lstat(cur);
    if (st.ok()) {
      if (st->type != FileType::kDirectory) {
        return Status::FailedPrecondition(cur +
                                          " is a link or a file, not a directory: "
                                          "refusing to write through it; remove it first");
      }
    } else if (st.error().code() != Code::kNotFound) {
      return st.error();
    } else {
      OUTPOST_RETURN_IF_ERROR(fs.make_dirs(cur));
    }
    pos = slash + 1;
  }
}

// A bundle is written into a new or empty folder; one that holds anything needs `force`
// (merging into someone's files is not what checkout promises). Not a folder: refused.
Status check_checkout_folder(FileSystem& fs, const std::string& dir, bool force) {
  auto st = fs.stat(dir);
  if (!st.ok()) return st.error().code() == Code::kNotFound ? Status::Ok() : st.error();
  if (st->type != FileType::kDirectory) {
    return Status::FailedPrecondition("checkout into " + dir +
                                      ": it is not a folder; choose a new or empty folder");
  }
  if (force) return Status::Ok();
  OUTPOST_ASSIGN_OR_RETURN(auto entries, fs.list_dir(dir));
  if (!entries.empty()) {
    return Status::FailedPrecondition(
        "checkout into " + dir +
        ": the folder is not empty; choose a new or empty folder, or add --force to write the "
        "bundle's files into it (files of the same name are replaced, others are kept)");
  }
  return Status::Ok();
}

// One file of a batch: written to `tmp` (not yet synced), renamed to `final_path` when the
// batch is committed.
struct PendingFile {
  std::string tmp;
  std::string final_path;
  std::unique_ptr<WritableFile> file;
};

}  // namespace

Status Node::checkout(const std::string& bundle, const std::string& dir, bool force) {
  FileSystem& fs = *fs_;
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, bundle));
  if (!rec)
    return Status::NotFound("no bundle named " + bundle + " in this store: see 'outpost ls'");
  OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(txn, bundle, rec->current));
  OUTPOST_RETURN_IF_ERROR(check_checkout_folder(fs, dir, force));
  OUTPOST_RETURN_IF_ERROR(in_checkout(dir, fs.make_dirs(dir)));
  for (const auto& f : held.manifest.files) {
    // Paths were validated when the manifest was parsed; check again at the point of use.
    OUTPOST_RETURN_IF_ERROR(packaging::validate_file_path(f.path));
    OUTPOST_RETURN_IF_ERROR(make_safe_dirs(fs, dir, f.path));
    std::string full = join_path(dir, f.path);
    auto st = fs.lstat(full);
    if (st.ok() && st->type == FileType::kSymlink) {
      return Status::FailedPrecondition(full + " is a link: refusing to write through it");
    }
  }
  // Stream file by file through a temp file each, so a large file never sits in memory.
  // A batch of temp files is written unsynced, then synced back to back (the kernel has
  // written most of it back by then), renamed over the old files, and made durable with one
  // directory sync per directory: after a crash each file is the old or the complete new
  // one, without a write-sync-rename-sync round trip per file (10,000 small files took
  // minutes that way, and SD cards wear out). Batches are bounded in files (open
  // descriptors) and bytes.
  std::vector<PendingFile> pending;
  std::uint64_t pending_bytes = 0;
  auto drop_pending = [&] {
    for (auto& p : pending) {
      p.file.reset();
      (void)fs.remove(p.tmp);
    }
    pending.clear();
    pending_bytes = 0;
  };
  auto commit_pending = [&]() -> Status {
    Status s = Status::Ok();
    for (auto& p : pending) {
      s = p.file->sync();
      if (s.ok()) s = p.file->close();
      if (!s.ok()) break;
    }
    std::set<std::string> dirs;
    for (std::size_t i = 0; i < pending.size() && s.ok(); ++i) {
      s = fs.rename(pending[i].tmp, pending[i].final_path);
      if (!s.ok()) {
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
      dirs.insert(dir_name(pending[i].final_path));
    }
    if (!s.ok()) {
      drop_pending();
      return in_checkout(dir, s);
    }
    pending.clear();
    pending_bytes = 0;
    for (const auto& d : dirs) OUTPOST_RETURN_IF_ERROR(in_checkout(dir, fs.fsync_dir(d)));
    return Status::Ok();
  };
  constexpr std::size_t kSyncEveryFiles = 256;
  constexpr std::uint64_t kSyncEveryBytes = 64u << 20;
  std::size_t next = 0;
  packaging::Decompressor dec;
  PageBudget pages(*store_);
  for (std::size_t f = 0; f < held.manifest.files.size(); ++f) {
    const auto& file = held.manifest.files[f];
    std::string full = join_path(dir, file.path);
    std::string tmp = join_path(dir_name(full), "." + base_name(full) + ".outpost-tmp");
    // A temp file left by a crash is removed (never written through: it may be a link).
    if (fs.lstat(tmp).ok()) (void)fs.remove(tmp);
    auto created = fs.create_file(tmp, file.mode, /*exclusive=*/true);
    if (!created.ok()) {
      drop_pending();
      return in_checkout(dir, created.error());
    }
    pending.push_back(PendingFile{tmp, full, std::move(*created)});
    WritableFile& out = *pending.back().file;
    Status st = Status::Ok();
    for (std::uint32_t c = 0; c < held.index.file_chunks[f] && st.ok(); ++c, ++next) {
      auto raw = read_chunk(txn, dec, held.index.chunks[next]);
      if (!raw.ok()) {
        st = raw.error();
        break;
      }
      pages.add(raw->size());
      st = in_checkout(dir, out.append(view(*raw)));
    }
    if (!st.ok()) {
      drop_pending();
      return st;
    }
    pending_bytes += file.size;
    if (pending.size() >= kSyncEveryFiles || pending_bytes >= kSyncEveryBytes) {
      OUTPOST_RETURN_IF_ERROR(commit_pending());
    }
  }
  return commit_pending();
}

namespace {

// What is wrong with chunk record (k, record), whose value may be in a block; nullopt when its
// bytes hash to k. Says it after the chunk's name.
std::optional<std::string> chunk_problem(const storage::ReadTxn& txn, packaging::Decompressor& dec,
                                         ByteView k, ByteView record) {
  const auto parsed = chunks::parse_record(record);
  if (k.size() != 32 || !parsed) return std::string(": record is malformed");
  std::optional<Bytes> held;
  ByteView value = record;
  if (!parsed->inline_value) {
    auto got = chunks::get(txn, k);
    if (!got.ok()) return ": " + got.error().message();
    if (!*got) return std::string(": record is missing");
    held = std::move(**got);
    value = view(*held);
  }
  auto stored = records::parse_chunk_value(value);
  if (!stored.ok()) return std::string(": record is malformed");
  auto raw = dec.decompress(stored->frame, stored->raw_length, "chunk");
  crypto::Digest id;
  std::copy(k.begin(), k.end(), id.begin());
  if (!raw.ok() || !crypto::digest_equal(crypto::blake2b(view(*raw)), id)) {
    return std::string(" is damaged (its bytes do not hash to its id)");
  }
  return std::nullopt;
}

}  // namespace

Result<VerifyReport> Node::verify() {
  VerifyReport report;
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  packaging::Decompressor dec;
  PageBudget pages(*store_);
  // 1. Every chunk rehashes to its id.
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView k, ByteView v) {
    ++report.chunks_checked;
    pages.add(v.size());
    if (auto problem = chunk_problem(txn, dec, k, v)) {
      report.problems.push_back("chunk " + to_hex(k) + *problem +
                                ": run 'outpost verify --repair', then 'outpost sync'");
    }
    return true;
  }));
  // 2. Every held version is complete and its content matches its signed root.
  std::vector<std::pair<std::string, records::BundleRecord>> recs;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
    auto r = records::parse_bundle(v);
    if (!r.ok()) {
      report.problems.push_back("bundle record " + std::string(as_chars(k)) + " is damaged");
    } else {
      recs.emplace_back(std::string(as_chars(k)), std::move(*r));
    }
    return true;
  }));
  for (const auto& [name, r] : recs) {
    for (auto v : r.versions) {
      ++report.versions_checked;
      std::string what = name + " version " + std::to_string(v);
      auto held = load_version(txn, name, v);
      if (!held.ok()) {
        report.problems.push_back(what + ": " + held.error().message());
        continue;
      }
      auto root = compute_root(*store_, txn, *held);
      if (!root.ok()) {
        report.problems.push_back(what + ": " + root.error().message());
      } else if (!crypto::digest_equal(*root, held->manifest.content_root)) {
        report.problems.push_back(what + ": content does not match its signed root hash");
      }
    }
  }
  // 3. Trusted metadata still carries valid signatures.
  OUTPOST_ASSIGN_OR_RETURN(auto subs, subscriptions());
  for (const auto& sub : subs) {
    auto trusted = load_trusted(txn, sub.id);
    if (!trusted.ok()) {
      report.problems.push_back("repository " + sub.id + ": " + trusted.error().message());
      continue;
    }
    Status s = verify_trusted(*trusted);
    report.metadata_checked += 4 + trusted->delegated.size();
    if (!s.ok()) report.problems.push_back("repository " + sub.id + ": " + s.message());
  }
  return report;
}

Result<RepairReport> Node::repair() {
  RepairReport report;
  OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
    report = {};
    packaging::Decompressor dec;
    std::vector<Bytes> bad;
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kChunks, {}, [&](ByteView k, ByteView v) {
      if (chunk_problem(txn, dec, k, v)) bad.emplace_back(k.begin(), k.end());
      return true;
    }));
    for (const Bytes& k : bad) OUTPOST_RETURN_IF_ERROR(txn.del(Table::kChunks, view(k)));
    report.chunks_removed = bad.size();
    OUTPOST_RETURN_IF_ERROR(chunks::compact(txn).status());
    OUTPOST_ASSIGN_OR_RETURN(report.bundles_removed,
                             txn.erase_if(Table::kBundles, {}, [&](ByteView, ByteView v) {
                               return !records::parse_bundle(v).ok();
                             }));
    return Status::Ok();
  }));
  return report;
}

Result<GcReport> Node::gc(int retain) {
  if (retain < 1) return Status::InvalidArgument("--retain must be at least 1");
  GcReport report;
  OUTPOST_RETURN_IF_ERROR(store_->update([&](storage::WriteTxn& txn) -> Status {
    report = {};
    std::vector<std::pair<std::string, records::BundleRecord>> recs;
    Status bad = Status::Ok();
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
      auto r = records::parse_bundle(v);
      if (!r.ok()) {
        bad = Status::Corruption("bundle record " + std::string(as_chars(k)) +
                                 " is damaged: gc stopped, nothing removed");
        return false;
      }
      recs.emplace_back(std::string(as_chars(k)), std::move(*r));
      return true;
    }));
    OUTPOST_RETURN_IF_ERROR(bad);
    std::set<crypto::Digest> live;
    for (auto& [name, r] : recs) {
      // Per-bundle retention overrides the default (kSettings "retain" \0 bundle).
      int keep = retain;
      OUTPOST_ASSIGN_OR_RETURN(auto setting,
                               txn.get(Table::kSettings, view(storage::text_key("retain", name))));
      if (auto n = records::get_u64(setting); n && *n >= 1) keep = static_cast<int>(*n);
      std::vector<std::uint64_t> kept;
      for (auto v : r.versions) {
        bool keep_it = v <= r.current && r.current - v < static_cast<std::uint64_t>(keep);
        Bytes key = storage::version_key(name, v);
        if (!keep_it) {
          OUTPOST_RETURN_IF_ERROR(store_whole_against(txn, name, r.versions, v));
          OUTPOST_RETURN_IF_ERROR(txn.del(Table::kManifests, view(key)));
          OUTPOST_RETURN_IF_ERROR(txn.del(Table::kIndexes, view(key)));
          ++report.versions_removed;
          continue;
        }
        kept.push_back(v);
        OUTPOST_ASSIGN_OR_RETURN(HeldVersion held, load_version(txn, name, v));
        for (const auto& c : held.index.chunks) live.insert(c.id);
      }
      if (kept.size() != r.versions.size()) {
        r.versions = kept;
        OUTPOST_RETURN_IF_ERROR(txn.put(Table::kBundles, as_bytes(name), view(records::encode(r))));
      }
    }
    // Exactly what is deleted is counted: chunks no kept version uses, and records that are
    // malformed (a store copied while a sync wrote) whatever their key; a second run finds
    // nothing more.
    OUTPOST_ASSIGN_OR_RETURN(
        report.chunks_removed, txn.erase_if(Table::kChunks, {}, [&](ByteView k, ByteView v) {
          crypto::Digest id{};
          const auto record = chunks::parse_record(v);
          const bool malformed = k.size() != id.size() || !record;
          if (!malformed) {
            std::copy(k.begin(), k.end(), id.begin());
            if (live.count(id)) return false;
          } else {
            ++report.malformed_removed;
          }
          report.bytes_freed += record && !record->inline_value ? record->length : v.size();
          return true;
        }));
    // The blocks the removed chunks were packed in: dropped, or rewritten when less than
    // half is still used.
    return chunks::compact(txn).status();
  }));
  return report;
}

Status Node::set_retention(const std::string& bundle, int n) {
  if (n < 1) return Status::InvalidArgument("--retain must be at least 1");
  OUTPOST_RETURN_IF_ERROR(packaging::validate_bundle_name(bundle));
  return store_->update([&](storage::WriteTxn& txn) -> Status {
    return txn.put(Table::kSettings, view(storage::text_key("retain", bundle)),
                   view(records::u64_value(static_cast<std::uint64_t>(n))));
  });
}

Result<NodeStatus> Node::status() {
  OUTPOST_ASSIGN_OR_RETURN(auto stats, store_->stats());
  OUTPOST_ASSIGN_OR_RETURN(auto subs, subscriptions());
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store_->read());
  NodeStatus st;
  OUTPOST_ASSIGN_OR_RETURN(st.time_floor, time_floor(txn));
  st.store = store_->dir();
  st.map_bytes = stats.map_bytes;
  st.used_bytes = stats.used_bytes;
  st.in_use_bytes = stats.in_use_bytes;
  st.file_bytes = stats.file_bytes;
  st.chunks = stats.entries[static_cast<int>(Table::kChunks)];
  st.bundles = stats.entries[static_cast<int>(Table::kBundles)];
  for (const auto& s : subs) {
    RepositoryStatus r{s.id, s.location, s.last_sync, 0, 0, s.ranks};
    // Only the timestamp: the daemon asks after every round, and the targets of a library are
    // megabytes to read and parse.
    auto timestamp = load_role(txn, s.id, "timestamp");
    if (timestamp.ok() && !timestamp->empty()) {
      auto env = tuf::parse_metadata(view(*timestamp), "timestamp");
      if (env.ok()) {
        if (auto ts = tuf::Timestamp::from_signed(*env->find("signed")); ts.ok()) {
          r.timestamp_version = static_cast<std::uint64_t>(ts->version);
          r.timestamp_expires = ts->expires;
        }
      }
    }
    st.repositories.push_back(std::move(r));
  }
  return st;
}

}  // namespace outpost::node

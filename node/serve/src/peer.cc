#include "outpost/serve/peer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "http_parse.h"
#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/node/chunk_store.h"
#include "outpost/node/held_patch.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/pack.h"
#include "outpost/storage/store.h"

namespace outpost::serve {

namespace {

using storage::Table;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kRecordHeader = 1 + 32 + 8 + 8 + 2;  // type, id, raw, stored, name length
constexpr std::string_view kPackMagic = "outpack1";
constexpr auto kCatalogMaxAge = std::chrono::seconds(5);
constexpr std::size_t kPackCacheEntries = 64;

ByteView bv(const Bytes& b) { return {b.data(), b.size()}; }

std::string etag_of(ByteView bytes) {
  return "\"" + crypto::hex(crypto::sha256(bytes)).substr(0, 32) + "\"";
}

struct ChunkAt {
  std::uint64_t offset = 0;  // of the stored bytes in the pack
  std::uint32_t stored = 0;
  std::uint32_t raw = 0;
  crypto::Digest id{};
};

struct PackMap {
  std::vector<ChunkAt> chunks;  // by offset
  std::uint64_t end = 0;        // past the last chunk's stored bytes
};

struct RepoFiles {
  std::string location;
  std::map<std::string, Bytes> metadata;            // path -> bytes
  std::map<std::string, Bytes> manifests;           // path -> version key
  std::map<std::string, Bytes> indexes;             // path -> version key
  std::map<std::string, std::vector<Bytes>> packs;  // path -> version keys of indexes
  std::map<std::string, std::pair<crypto::Digest, std::uint64_t>> patches;  // path -> hash, length
};

struct Catalog {
  std::map<std::string, RepoFiles> repos;
  Clock::time_point built;
};

// The versioned file name of a held metadata role, and the plain names that also serve it.
void add_metadata(RepoFiles& files, const std::string& role, Bytes bytes) {
  auto env = parse_json(as_chars(bv(bytes)));
  std::int64_t version = 0;
  if (env.ok()) {
    if (const Json* s = env->find("signed"); s != nullptr) {
      auto v = s->get_int("version");
      if (v.ok()) version = *v;
    }
  }
  if (role == "timestamp") {
    files.metadata[packaging::metadata_path("timestamp.json")] = std::move(bytes);
    return;
  }
  if (version <= 0) return;
  if (role.rfind("root-history/", 0) == 0) {  // every root version the node kept
    files.metadata[packaging::metadata_path(packaging::versioned_metadata_name(version, "root"))] =
        std::move(bytes);
    return;
  }
  std::string name = role;
  const std::string delegated = "delegated/";
  if (name.rfind(delegated, 0) == 0) name = name.substr(delegated.size());
  if (role == "root") files.metadata[packaging::metadata_path("root.json")] = bytes;
  files.metadata[packaging::metadata_path(packaging::versioned_metadata_name(version, name))] =
      std::move(bytes);
}

// Pack ids named by a chunk index, from its header (docs/format-repository.md).
std::vector<crypto::Digest> index_packs(ByteView index) {
  std::vector<crypto::Digest> out;
  if (index.size() < packaging::kIndexHeaderBytes) return out;
  std::uint32_t count = get_u32le(index.data() + 12);
  if (index.size() < packaging::kIndexHeaderBytes + std::uint64_t{count} * 32) return out;
  for (std::uint32_t i = 0; i < count; ++i) {
    crypto::Digest d{};
    std::copy_n(index.data() + packaging::kIndexHeaderBytes + i * 32, 32, d.begin());
    out.push_back(d);
  }
  return out;
}

}  // namespace

struct PeerServer::Impl {
  storage::Store& store;
  mutable std::mutex mu;
  std::shared_ptr<const Catalog> catalog;
  bool stale = true;
  std::map<std::string, std::shared_ptr<const PackMap>> pack_cache;
  std::map<std::string, Clock::time_point> seen;
  std::atomic<std::uint64_t> requests{0}, bytes_out{0}, not_found{0};
  std::atomic<std::uint64_t> pieces_requests{0}, patches_made{0};
  // Patches made on demand, by "repo\0bundle\0from\0to" (a few, bounded in bytes), and
  // one made at a time (CPU: the others are told to come back).
  std::map<std::string, std::shared_ptr<const Bytes>> made;
  std::size_t made_bytes = 0;
  std::mutex making;

  explicit Impl(storage::Store& s) : store(s) {}

  Result<std::shared_ptr<const Catalog>> current() {
    {
      std::lock_guard lock(mu);
      if (catalog && !stale && Clock::now() - catalog->built < kCatalogMaxAge) return catalog;
    }
    OUTPOST_ASSIGN_OR_RETURN(auto fresh, build());
    std::lock_guard lock(mu);
    catalog = std::move(fresh);
    stale = false;
    pack_cache.clear();
    return catalog;
  }

  Result<std::shared_ptr<const Catalog>> build() {
    auto cat = std::make_shared<Catalog>();
    cat->built = Clock::now();
    OUTPOST_ASSIGN_OR_RETURN(auto txn, store.read());
    std::map<std::string, std::string> repo_of_bundle;
    std::map<std::string, crypto::Digest> index_hash;
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kSubscriptions, {}, [&](ByteView k, ByteView v) {
      auto j = parse_json(as_chars(v));
      RepoFiles& f = cat->repos[std::string(as_chars(k))];
      if (j.ok() && j->get_string("location").ok()) f.location = *j->get_string("location");
      return true;
    }));
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kMetadata, {}, [&](ByteView k, ByteView v) {
      std::string_view key = as_chars(k);
      std::size_t nul = key.find('\0');
      if (nul == std::string_view::npos) return true;
      std::string repo(key.substr(0, nul));
      add_metadata(cat->repos[repo], std::string(key.substr(nul + 1)), Bytes(v.begin(), v.end()));
      return true;
    }));
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
      auto j = parse_json(as_chars(v));
      if (j.ok() && j->get_string("repo").ok()) {
        repo_of_bundle[std::string(as_chars(k))] = *j->get_string("repo");
      }
      return true;
    }));
    OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kManifests, {}, [&](ByteView k, ByteView stored) {
      auto vk = storage::parse_version_key(k);
      if (!vk) return true;
      auto repo = repo_of_bundle.find(vk->bundle);
      if (repo == repo_of_bundle.end()) return true;
      auto file = node::unpack_file(stored);
      if (!file.ok()) return true;
      const ByteView v(*file);
      RepoFiles& f = cat->repos[repo->second];
      Bytes key(k.begin(), k.end());
      f.manifests[packaging::manifest_file_path(vk->bundle, crypto::hex(crypto::sha256(v)))] = key;
      auto manifest = packaging::Manifest::parse(v);
      if (!manifest.ok()) return true;
      f.indexes[manifest->index.path] = key;
      index_hash[manifest->index.path] = manifest->index.blake2b;
      for (const auto& patch : manifest->patches) {
        f.patches[patch.path] = {patch.blake2b, patch.length};
      }
      return true;
    }));
    for (auto& [repo, f] : cat->repos) {
      for (auto it = f.indexes.begin(); it != f.indexes.end();) {
        OUTPOST_ASSIGN_OR_RETURN(auto index, node::get_file(txn, Table::kIndexes, bv(it->second)));
        // A version built from a patch holds the node's own index (its own chunk frames, no
        // packs), not the published one: only the published one can be served.
        if (!index || !crypto::digest_equal(crypto::blake2b(bv(*index)), index_hash[it->first])) {
          it = f.indexes.erase(it);
          continue;
        }
        for (const auto& pack : index_packs(bv(*index))) {
          f.packs[packaging::pack_object_path(pack)].push_back(it->second);
        }
        ++it;
      }
    }
    return std::shared_ptr<const Catalog>(std::move(cat));
  }

  Result<std::shared_ptr<const PackMap>> pack_map(const std::string& cache_key,
                                                  const std::string& path,
                                                  const std::vector<Bytes>& keys) {
    {
      std::lock_guard lock(mu);
      auto it = pack_cache.find(cache_key);
      if (it != pack_cache.end()) return it->second;
    }
    auto map = std::make_shared<PackMap>();
    OUTPOST_ASSIGN_OR_RETURN(auto txn, store.read());
    std::set<std::uint64_t> offsets;
    for (const Bytes& key : keys) {
      OUTPOST_ASSIGN_OR_RETURN(auto bytes, node::get_file(txn, Table::kIndexes, bv(key)));
      if (!bytes) continue;
      auto index = packaging::ChunkIndex::parse(bv(*bytes), 16u << 20);
      if (!index.ok()) continue;
      for (const auto& e : index->chunks) {
        if (packaging::pack_object_path(index->packs[e.pack]) != path) continue;
        if (e.offset < kPackMagic.size() + kRecordHeader) continue;
        if (!offsets.insert(e.offset).second) continue;
        map->chunks.push_back({e.offset, e.stored_length, e.raw_length, e.id});
      }
    }
    std::sort(map->chunks.begin(), map->chunks.end(),
              [](const ChunkAt& a, const ChunkAt& b) { return a.offset < b.offset; });
    for (const auto& c : map->chunks) map->end = std::max(map->end, c.offset + c.stored);
    std::lock_guard lock(mu);
    if (pack_cache.size() >= kPackCacheEntries) pack_cache.clear();
    pack_cache[cache_key] = map;
    return std::shared_ptr<const PackMap>(map);
  }

  // The bytes [at, at + n) of a pack as far as this node can rebuild them.
  Result<std::string> read_pack(const PackMap& map, std::uint64_t at, std::uint64_t n) {
    if (n == 0 || at + n > map.end || at + n < at) {
      return Status::NotFound("bytes past what this node holds of the pack");
    }
    std::string out(n, '\0');
    auto put = [&](std::uint64_t offset, std::string_view bytes) {
      std::uint64_t lo = std::max(offset, at), hi = std::min(offset + bytes.size(), at + n);
      if (lo >= hi) return;
      std::copy_n(bytes.data() + (lo - offset), hi - lo, out.data() + (lo - at));
    };
    put(0, kPackMagic);
    auto first = std::lower_bound(
        map.chunks.begin(), map.chunks.end(), at,
        [](const ChunkAt& c, std::uint64_t v) { return c.offset + c.stored <= v; });
    OUTPOST_ASSIGN_OR_RETURN(auto txn, store.read());
    for (auto it = first; it != map.chunks.end() && it->offset - kRecordHeader < at + n; ++it) {
      std::array<char, kRecordHeader> header{};
      header[0] = 1;
      std::memcpy(header.data() + 1, it->id.data(), 32);
      for (int b = 0; b < 8; ++b) {
        header[33 + b] = static_cast<char>((std::uint64_t{it->raw} >> (8 * b)) & 0xff);
        header[41 + b] = static_cast<char>((std::uint64_t{it->stored} >> (8 * b)) & 0xff);
      }
      put(it->offset - kRecordHeader, std::string_view(header.data(), header.size()));
      if (it->offset + it->stored <= at || it->offset >= at + n) continue;
      OUTPOST_ASSIGN_OR_RETURN(auto value, node::chunks::get(txn, {it->id.data(), it->id.size()}));
      if (!value || value->size() != 5 + std::size_t{it->stored}) {
        return Status::NotFound("chunk " + crypto::hex(it->id) + " is not held by this node");
      }
      put(it->offset,
          std::string_view(reinterpret_cast<const char*>(value->data() + 5), it->stored));
    }
    return out;
  }
};

namespace internal {

bool parse_digests(const std::string& list, std::vector<crypto::Digest>* out) {
  std::size_t at = 0;
  while (at < list.size()) {
    std::size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    crypto::Digest d{};
    if (!crypto::parse_digest(std::string_view(list).substr(at, comma - at), d)) return false;
    out->push_back(d);
    at = comma + 1;
  }
  return true;
}

bool parse_version_arg(const std::string& text, std::uint64_t* out) {
  if (text.empty() || text.size() > 12 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  *out = std::stoull(text);
  return *out > 0;
}

}  // namespace internal

using internal::parse_digests;

HttpResponse PeerServer::patch_on_demand(const HttpRequest& request, const void* repo_files,
                                         const std::string& repo) {
  const auto& f = *static_cast<const RepoFiles*>(repo_files);
  const std::string bundle = request.arg("bundle");
  std::uint64_t from = 0, to = 0;
  const auto number = internal::parse_version_arg;
  if (bundle.empty() || bundle.size() > 256 || !number(request.arg("from"), &from) ||
      !number(request.arg("to"), &to) || from >= to) {
    return HttpResponse::text(400, "a patch on demand takes bundle=NAME&from=N&to=M with N < M");
  }
  // Only bundles of this repository, and versions this node holds.
  bool listed = false;
  for (const auto& [path, key] : f.manifests) {
    auto vk = storage::parse_version_key(bv(key));
    if (vk && vk->bundle == bundle && vk->version == to) listed = true;
  }
  if (!listed)
    return HttpResponse::text(404, "this node does not hold " + bundle + " " + std::to_string(to));
  const std::string key =
      repo + '\0' + bundle + '\0' + std::to_string(from) + '\0' + std::to_string(to);
  std::shared_ptr<const Bytes> patch;
  {
    std::lock_guard lock(impl_->mu);
    if (auto it = impl_->made.find(key); it != impl_->made.end()) patch = it->second;
  }
  if (!patch) {
    std::unique_lock busy(impl_->making, std::try_to_lock);
    if (!busy.owns_lock()) {
      HttpResponse r = HttpResponse::text(503, "making another patch: retry in a few seconds");
      r.headers.emplace_back("Retry-After", "2");
      return r;
    }
    auto made = node::make_held_patch(impl_->store, bundle, from, to, kMaxPiecesBytes);
    if (!made.ok()) {
      const Code c = made.error().code();
      return HttpResponse::text(c == Code::kNotFound            ? 404
                                : c == Code::kResourceExhausted ? 413
                                                                : 500,
                                made.error().message());
    }
    if (made->size() > kMaxPiecesBytes) {
      return HttpResponse::text(413, "the patch would be larger than 32 MiB: fetch the chunks");
    }
    ++impl_->patches_made;
    patch = std::make_shared<const Bytes>(std::move(*made));
    std::lock_guard lock(impl_->mu);
    if (impl_->made_bytes + patch->size() > kMaxPiecesBytes || impl_->made.size() >= 16) {
      impl_->made.clear();
      impl_->made_bytes = 0;
    }
    impl_->made[key] = patch;
    impl_->made_bytes += patch->size();
  }
  std::string body;
  packaging::PackWriter writer([&](ByteView b) {
    body.append(reinterpret_cast<const char*>(b.data()), b.size());
    return Status::Ok();
  });
  const std::string name = bundle + "@" + std::to_string(from) + "-" + std::to_string(to);
  auto added = writer.add_file(packaging::RecordType::kPatch, name, bv(*patch));
  if (!added.ok()) return HttpResponse::text(500, added.error().message());
  auto done = writer.finish();
  if (!done.ok()) return HttpResponse::text(500, done.error().message());
  HttpResponse r;
  r.content_type = "application/x-outpost-pack";
  r.headers.emplace_back("X-Outpost-Missing", "0");
  r.body = std::move(body);
  return r;
}

HttpResponse PeerServer::pieces(const HttpRequest& request, const void* repo_files) {
  const auto& f = *static_cast<const RepoFiles*>(repo_files);
  std::vector<crypto::Digest> chunks, patches;
  if (!parse_digests(request.arg("chunks"), &chunks) ||
      !parse_digests(request.arg("patches"), &patches)) {
    return HttpResponse::text(400, "chunks= and patches= take comma-separated 64-hex hashes");
  }
  if (chunks.size() + patches.size() > kMaxPieces) {
    return HttpResponse::text(
        413, "at most " + std::to_string(kMaxPieces) + " pieces per request: split it");
  }
  if (chunks.empty() && patches.empty()) {
    return HttpResponse::text(400, "name the pieces: ?chunks=HEX,HEX&patches=HEX");
  }
  std::set<crypto::Digest> known_patches;
  for (const auto& [path, ref] : f.patches) known_patches.insert(ref.first);
  std::string body;
  packaging::PackWriter writer([&](ByteView b) {
    if (body.size() + b.size() > kMaxPiecesBytes) {
      return Status::ResourceExhausted("more than 32 MiB of pieces: ask for fewer at a time");
    }
    body.append(reinterpret_cast<const char*>(b.data()), b.size());
    return Status::Ok();
  });
  std::uint64_t missing = 0, sent = 0;
  auto txn = impl_->store.read();
  if (!txn.ok()) return HttpResponse::text(503, txn.error().message());
  for (const auto& id : chunks) {
    auto v = node::chunks::get(*txn, {id.data(), id.size()});
    if (!v.ok()) return HttpResponse::text(503, v.error().message());
    if (!*v || (*v)->size() <= 5 || (**v)[0] != 1) {
      ++missing;
      continue;
    }
    const Bytes& value = **v;
    auto added = writer.add_chunk(id, get_u32le(value.data() + 1),
                                  ByteView(value.data() + 5, value.size() - 5));
    if (!added.ok()) return HttpResponse::text(413, added.error().message());
    ++sent;
  }
  for (const auto& id : patches) {
    Bytes data;
    if (known_patches.count(id) != 0) {
      const std::string prefix = "object/" + crypto::hex(id) + "/";
      Status st = txn->scan(Table::kTransfers, as_bytes(prefix), [&](ByteView, ByteView v) {
        data.insert(data.end(), v.begin(), v.end());
        return data.size() <= kMaxPiecesBytes;
      });
      if (!st.ok()) return HttpResponse::text(503, st.message());
    }
    if (data.empty() || !crypto::digest_equal(crypto::blake2b(bv(data)), id)) {
      ++missing;
      continue;
    }
    auto added = writer.add_file(packaging::RecordType::kPatch, "", bv(data));
    if (!added.ok()) return HttpResponse::text(413, added.error().message());
    ++sent;
  }
  if (sent == 0) return HttpResponse::text(404, "this node holds none of the pieces asked for");
  auto done = writer.finish();
  if (!done.ok()) return HttpResponse::text(500, done.error().message());
  HttpResponse r;
  r.content_type = "application/x-outpost-pack";
  r.headers.emplace_back("X-Outpost-Missing", std::to_string(missing));
  r.body = std::move(body);
  return r;
}

PeerServer::PeerServer(storage::Store& store) : impl_(std::make_unique<Impl>(store)) {}
PeerServer::~PeerServer() = default;

void PeerServer::install(HttpServer& server, const std::string& prefix) {
  server.route(prefix, [this, prefix](const HttpRequest& r) {
    return handle(r, r.path.substr(prefix.size()));
  });
  if (prefix.size() > 1 && prefix.back() == '/') {
    server.route(prefix.substr(0, prefix.size() - 1), [this, prefix](const HttpRequest& r) {
      return r.path.size() + 1 == prefix.size() ? handle(r, "")
                                                : HttpResponse::text(404, "not found");
    });
  }
}

void PeerServer::invalidate() {
  std::lock_guard lock(impl_->mu);
  impl_->stale = true;
}

PeerStats PeerServer::stats() const {
  PeerStats s;
  s.requests = impl_->requests;
  s.bytes = impl_->bytes_out;
  s.not_found = impl_->not_found;
  s.pieces_requests = impl_->pieces_requests;
  s.patches_made = impl_->patches_made;
  std::lock_guard lock(impl_->mu);
  const auto now = Clock::now();
  for (const auto& [addr, when] : impl_->seen) {
    if (now - when < std::chrono::minutes(10)) ++s.peers;
  }
  return s;
}

HttpResponse PeerServer::handle(const HttpRequest& request, const std::string& relative) {
  ++impl_->requests;
  if (!request.remote.empty()) {
    std::lock_guard lock(impl_->mu);
    if (impl_->seen.size() > 4096) impl_->seen.clear();
    impl_->seen[request.remote] = Clock::now();
  }
  auto answer = [&](HttpResponse r) {
    // Tells a syncing node it may ask for many pieces at once (sync/source.h, peer()).
    r.headers.emplace_back("X-Outpost-Peer", "pieces");
    if (r.status == 404) ++impl_->not_found;
    impl_->bytes_out += r.body.size();
    return r;
  };
  auto cat = impl_->current();
  if (!cat.ok())
    return answer(HttpResponse::text(503, "store unavailable: " + cat.error().message()));
  const Catalog& c = **cat;
  if (relative.empty()) {
    Json list = Json::array();
    for (const auto& [id, f] : c.repos) {
      if (f.metadata.count(packaging::metadata_path("timestamp.json")) == 0) continue;
      Json j = Json::object();
      j.set("id", id);
      j.set("path", id + "/");
      list.push(std::move(j));
    }
    HttpResponse r;
    r.content_type = "application/json";
    r.body = list.dump(2) + "\n";
    return answer(std::move(r));
  }
  const std::size_t slash = relative.find('/');
  if (slash == std::string::npos) return answer(HttpResponse::text(404, "not found"));
  auto repo = c.repos.find(relative.substr(0, slash));
  if (repo == c.repos.end()) {
    return answer(
        HttpResponse::text(404, "this node holds no repository " + relative.substr(0, slash)));
  }
  const RepoFiles& f = repo->second;
  const std::string path = relative.substr(slash + 1);
  auto whole = [&](Bytes bytes, const std::string& type, const std::string& etag) {
    auto shared = std::make_shared<Bytes>(std::move(bytes));
    return serve_bytes(request, shared->size(), false, type, etag,
                       [shared](std::uint64_t at, std::uint64_t n) -> Result<std::string> {
                         return std::string(reinterpret_cast<const char*>(shared->data() + at), n);
                       });
  };
  if (path == "pieces") {
    ++impl_->pieces_requests;
    if (!request.arg("bundle").empty()) {
      return answer(patch_on_demand(request, &f, repo->first));
    }
    return answer(pieces(request, &f));
  }
  if (auto m = f.metadata.find(path); m != f.metadata.end()) {
    HttpResponse r = whole(m->second, "application/json", etag_of(bv(m->second)));
    // Only the timestamp changes under its name; everything else is named by version or hash.
    r.headers.emplace_back("Cache-Control",
                           path.ends_with("timestamp.json") || path.ends_with("/root.json")
                               ? "no-cache"
                               : "max-age=86400");
    return answer(std::move(r));
  }
  auto from_table = [&](Table t, const Bytes& key, const std::string& type) {
    auto txn = impl_->store.read();
    if (!txn.ok()) return HttpResponse::text(503, txn.error().message());
    auto v = node::get_file(*txn, t, bv(key));
    if (!v.ok()) return HttpResponse::text(500, v.error().message());
    if (!*v) return HttpResponse::text(404, "no longer held (collected)");
    std::string etag = etag_of(bv(**v));
    return whole(std::move(**v), type, etag);
  };
  if (auto m = f.manifests.find(path); m != f.manifests.end()) {
    return answer(from_table(Table::kManifests, m->second, "application/json"));
  }
  if (auto m = f.indexes.find(path); m != f.indexes.end()) {
    return answer(from_table(Table::kIndexes, m->second, "application/octet-stream"));
  }
  if (auto p = f.patches.find(path); p != f.patches.end()) {
    // Kept by the daemon's syncs (SyncOptions::keep_patches) in the transfers table, in
    // pieces; served only when complete and matching the signed hash.
    auto txn = impl_->store.read();
    if (!txn.ok()) return answer(HttpResponse::text(503, txn.error().message()));
    const std::string prefix = "object/" + crypto::hex(p->second.first) + "/";
    Bytes data;
    Status scanned = txn->scan(Table::kTransfers, as_bytes(prefix), [&](ByteView, ByteView v) {
      data.insert(data.end(), v.begin(), v.end());
      return data.size() <= p->second.second;
    });
    if (!scanned.ok()) return answer(HttpResponse::text(503, scanned.message()));
    if (data.size() != p->second.second ||
        !crypto::digest_equal(crypto::blake2b(bv(data)), p->second.first)) {
      return answer(HttpResponse::text(404, "this node does not hold the patch " + path));
    }
    return answer(whole(std::move(data), "application/octet-stream",
                        "\"" + crypto::hex(p->second.first) + "\""));
  }
  if (auto p = f.packs.find(path); p != f.packs.end()) {
    auto map = impl_->pack_map(repo->first + "/" + path, path, p->second);
    if (!map.ok()) return answer(HttpResponse::text(503, map.error().message()));
    std::shared_ptr<const PackMap> pm = *map;
    const std::string id = path.substr(path.rfind('/') + 1, 64);
    return answer(serve_bytes(
        request, 0, true, "application/octet-stream", "\"" + id + "\"",
        [&](std::uint64_t at, std::uint64_t n) { return impl_->read_pack(*pm, at, n); }));
  }
  return answer(HttpResponse::text(404, "not held by this node: " + path));
}

}  // namespace outpost::serve

// Metadata bytes of one change in a repository of 10,000 bundles.
//
// Builds a repository whose delegated role "un.ga" lists 10,000 bundles (un/ga/R00000 ...,
// one small file each): the realistic worst case for metadata size, one role holding every
// target. The 10,000 first versions are written directly in the repository format (packs,
// chunk indexes, patches, manifests, one signed role version, snapshot, timestamp) because
// publishing them one by one costs O(bundles) each. Then one bundle changes twice and is
// published with packaging::publish(), the real publisher; the second publication is the
// steady state measured: timestamp.json + metadata/updates/N.from-(N-1).upd is what a node
// holding snapshot N-1 fetches.
//
// Usage: outpost_metadata10k_bench WORK_DIR [BUNDLES]   (WORK_DIR must not exist)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/base/fs.h"
#include "outpost/base/json.h"
#include "outpost/crypto/hash.h"
#include "outpost/crypto/keys.h"
#include "outpost/crypto/tuf.h"
#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/manifest.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/repository.h"
#include "outpost/packaging/update_file.h"

namespace op = outpost::packaging;
namespace tuf = outpost::crypto::tuf;
using outpost::Bytes;
using outpost::ByteView;
using outpost::Status;

namespace {

class FixedClock : public outpost::Clock {
 public:
  explicit FixedClock(std::int64_t t) : t_(t) {}
  std::int64_t now() const override { return t_; }
  void advance(std::int64_t s) { t_ += s; }

 private:
  std::int64_t t_;
};

[[noreturn]] void die(const std::string& what, const Status& s) {
  std::cerr << "metadata10k: " << what << ": " << s.message() << "\n";
  std::exit(1);
}
template <typename T>
T must(outpost::Result<T> r, const std::string& what) {
  if (!r.ok()) die(what, r.error());
  return std::move(r).value();
}
void must(const Status& s, const std::string& what) {
  if (!s.ok()) die(what, s);
}

void write(const std::string& path, ByteView data) {
  must(outpost::real_fs().make_dirs(path.substr(0, path.rfind('/'))), "mkdir");
  must(outpost::real_fs().write_file_atomic(path, data, 0644), "writing " + path);
}

std::string bundle_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "un/ga/R%05d", i);
  return buf;
}

std::string text_of(int i, int release) {
  return "# Resolution " + std::to_string(i) + "\n\nThe General Assembly, recalling its " +
         "resolution " + std::to_string(70000 + i) + " of release " + std::to_string(release) +
         ", decides to remain seized of the matter.\n";
}

std::string source_dir(const std::string& work, int i, int release) {
  const std::string dir = work + "/src/" + std::to_string(i);
  write(dir + "/bundle.json",
        outpost::as_bytes("{\"name\":\"" + bundle_name(i) + "\",\"kind\":\"resolution\"}"));
  write(dir + "/text.md", outpost::as_bytes(text_of(i, release)));
  return dir;
}

std::uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: outpost_metadata10k_bench WORK_DIR [BUNDLES]\n";
    return 2;
  }
  const std::string work = argv[1];
  const int bundles = argc > 2 ? std::atoi(argv[2]) : 10000;
  if (!outpost::crypto::init()) return 1;
  const std::string repo = work + "/repo";
  FixedClock clock(1795887780);
  auto root = must(outpost::crypto::SecretKey::generate(), "key");
  auto targets = must(outpost::crypto::SecretKey::generate(), "key");
  auto snapshot = must(outpost::crypto::SecretKey::generate(), "key");
  auto timestamp = must(outpost::crypto::SecretKey::generate(), "key");
  auto publisher = must(outpost::crypto::SecretKey::generate(), "key");
  op::InitOptions io;
  io.root_keys = {&root};
  io.targets_key = &targets;
  io.snapshot_key = &snapshot;
  io.timestamp_key = &timestamp;
  io.clock = &clock;
  must(op::init_repository(repo, io), "init");
  must(op::delegate(repo, targets, snapshot, timestamp, publisher.public_key(), "un/ga", clock),
       "delegate");

  // ---- the 10,000 first versions, written directly -------------------------------------------
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t now = clock.now();
  op::Compressor chunk_compressor(op::kDefaultChunkLevel);
  Bytes pack_bytes;
  op::PackWriter pack([&](ByteView b) {
    pack_bytes.insert(pack_bytes.end(), b.begin(), b.end());
    return Status::Ok();
  });
  struct Pending {
    op::Manifest m;
    std::vector<op::ChunkEntry> chunks;
    std::vector<std::uint32_t> file_chunks;
  };
  std::vector<Pending> pending(static_cast<std::size_t>(bundles));
  for (int i = 0; i < bundles; ++i) {
    auto src = must(op::read_bundle_dir(source_dir(work, i, 1)), "reading a source");
    Pending& p = pending[static_cast<std::size_t>(i)];
    p.m.bundle = src.name;
    p.m.kind = src.kind;
    p.m.meta = src.meta;
    p.m.published = now;
    op::ContentHasher h;
    for (const auto& f : src.files) {
      const Bytes data = must(outpost::real_fs().read_file(src.full_path(f), 1 << 20), "read");
      must(h.add_file(f.path, f.mode, f.size), "hash");
      must(h.update(data), "hash");
      p.m.files.push_back({f.path, f.size, f.mode, op::media_type_for(f.path)});
      p.m.content_size += f.size;
      // Files are smaller than the minimum chunk: one chunk each.
      const auto id = outpost::crypto::blake2b(data);
      const Bytes frame = must(chunk_compressor.compress(data), "compress");
      const std::uint64_t off = must(pack.add_chunk(id, data.size(), frame), "pack");
      p.chunks.push_back({id, static_cast<std::uint32_t>(data.size()), 0, off,
                          static_cast<std::uint32_t>(frame.size())});
      p.file_chunks.push_back(1);
    }
    p.m.content_root = must(h.finish(), "root");
  }
  const auto pack_id = must(pack.finish(), "pack");
  write(repo + "/" + op::pack_object_path(pack_id), pack_bytes);

  tuf::Targets role;
  role.version = 1;
  role.expires = now + 365 * op::kSecondsPerDay;
  for (int i = 0; i < bundles; ++i) {
    Pending& p = pending[static_cast<std::size_t>(i)];
    op::ChunkIndex index;
    index.packs = {pack_id};
    index.file_chunks = p.file_chunks;
    index.chunks = p.chunks;
    const Bytes ib = index.encode();
    p.m.index.blake2b = outpost::crypto::blake2b(ib);
    p.m.index.length = ib.size();
    p.m.index.path = op::index_object_path(p.m.index.blake2b);
    write(repo + "/" + p.m.index.path, ib);
    // The from-0 patch, as the publisher writes it (a delta patch from the empty stream).
    Bytes stream;
    const std::string dir = work + "/src/" + std::to_string(i);
    must(op::write_content_stream(
             p.m,
             [&](std::size_t, const op::FileEntry& f, const op::ContentSink& sink) {
               auto b = outpost::real_fs().read_file(dir + "/" + f.path, 1 << 20);
               if (!b.ok()) return b.error();
               return sink(*b);
             },
             [&](ByteView b) {
               stream.insert(stream.end(), b.begin(), b.end());
               return Status::Ok();
             }),
         "stream");
    op::DeltaParams dp;
    dp.engine = op::DeltaEngine::kZstd;
    const Bytes full = must(op::encode_delta(ByteView(), stream, dp), "full patch");
    op::PatchRef ref;
    ref.engine = op::DeltaEngine::kZstd;
    ref.blake2b = outpost::crypto::blake2b(full);
    ref.length = full.size();
    ref.path = op::patch_object_path(ref.blake2b);
    write(repo + "/" + ref.path, full);
    p.m.patches = {ref};
    const Bytes mb = p.m.encode();
    const std::string sha = outpost::crypto::hex(outpost::crypto::sha256(mb));
    const std::string mpath = "targets/" + p.m.bundle + "/" + sha + ".manifest.json";
    write(repo + "/" + mpath, mb);
    write(repo + "/targets/" + p.m.bundle + "/.history.json",
          outpost::as_bytes("{\"versions\":{\"1\":\"" + mpath + "\"}}\n"));
    outpost::Json custom = outpost::Json::object();
    outpost::Json o = outpost::Json::object();
    o.set("version", std::int64_t{1});
    o.set("kind", p.m.kind);
    custom.set("outpost", std::move(o));
    role.targets[p.m.target_path()] =
        tuf::TargetFile{static_cast<std::int64_t>(mb.size()), sha, std::move(custom)};
  }
  write(repo + "/metadata/1.un.ga.json", tuf::sign_metadata(role.to_signed(), {&publisher}));
  auto st = must(op::load_repository(repo), "load");
  st.snapshot.version += 1;
  st.snapshot.expires = now + 30 * op::kSecondsPerDay;
  st.snapshot.meta["un.ga.json"] = tuf::MetaFile{1, std::nullopt, std::nullopt};
  const Bytes snap = tuf::sign_metadata(st.snapshot.to_signed(), {&snapshot});
  write(repo + "/metadata/" + std::to_string(st.snapshot.version) + ".snapshot.json", snap);
  st.timestamp.version += 1;
  st.timestamp.expires = now + 7 * op::kSecondsPerDay;
  st.timestamp.snapshot.version = st.snapshot.version;
  st.timestamp.snapshot.length = static_cast<std::int64_t>(snap.size());
  st.timestamp.snapshot.sha256 = outpost::crypto::hex(outpost::crypto::sha256(snap));
  write(repo + "/metadata/timestamp.json",
        tuf::sign_metadata(st.timestamp.to_signed(), {&timestamp}));
  std::printf("generated %d bundles (snapshot %lld) in %.1f s\n", bundles,
              static_cast<long long>(st.snapshot.version), seconds_since(t0));

  // ---- one bundle changes, twice, through the real publisher ---------------------------------
  const int changed = bundles / 2;
  std::int64_t n = 0;
  for (int release = 2; release <= 3; ++release) {
    clock.advance(3600);
    op::PublishOptions po;
    po.source_dir = source_dir(work, changed, release);
    po.publisher_key = &publisher;
    po.snapshot_key = &snapshot;
    po.timestamp_key = &timestamp;
    po.clock = &clock;
    const auto t1 = std::chrono::steady_clock::now();
    const auto r = must(op::publish(repo, po), "publish");
    n = must(op::load_repository(repo), "load").snapshot.version;
    std::printf("published %s version %lld (snapshot %lld) in %.1f s\n", r.bundle.c_str(),
                static_cast<long long>(r.version), static_cast<long long>(n), seconds_since(t1));
  }

  // ---- the numbers -----------------------------------------------------------------------------
  const auto final_state = must(op::load_repository(repo), "load");
  const std::string meta = repo + "/metadata/";
  const std::int64_t role_version = final_state.snapshot.meta.at("un.ga.json").version;
  const std::uint64_t ts = file_size(meta + "timestamp.json");
  const std::string upd_name = op::update_file_name(n, n - 1);
  const std::uint64_t upd = file_size(meta + "updates/" + upd_name);
  const auto pm = must(op::load_current_manifest(repo, final_state, bundle_name(changed)), "load");
  std::printf("\nrepository of %d bundles in one delegated role; one bundle changed:\n", bundles);
  std::printf("  timestamp.json                 %8llu B\n", static_cast<unsigned long long>(ts));
  std::printf("  updates/%-22s %8llu B\n", upd_name.c_str(), static_cast<unsigned long long>(upd));
  std::printf("  timestamp + update file        %8llu B  (target: well under 2048)\n",
              static_cast<unsigned long long>(ts + upd));
  const auto f =
      must(op::parse_update_file(
               must(outpost::real_fs().read_file(meta + "updates/" + upd_name, 1 << 30), "read"),
               1 << 20),
           "parse");
  for (const auto& e : f.entries) {
    std::printf("    entry %-40.40s %s %6llu B of %llu B\n", e.name.c_str(),
                e.encoding == op::UpdateEncoding::kZstdDelta ? "delta" : "alone",
                static_cast<unsigned long long>(e.data.size()),
                static_cast<unsigned long long>(e.result_length));
  }
  std::printf("  full files a node would otherwise fetch:\n");
  std::printf(
      "    %lld.snapshot.json %8llu B\n", static_cast<long long>(n),
      static_cast<unsigned long long>(file_size(meta + std::to_string(n) + ".snapshot.json")));
  std::printf("    %lld.un.ga.json    %8llu B\n", static_cast<long long>(role_version),
              static_cast<unsigned long long>(
                  file_size(meta + std::to_string(role_version) + ".un.ga.json")));
  std::printf("    manifest           %8llu B\n", static_cast<unsigned long long>(pm.bytes.size()));
  for (std::int64_t m = n - 2; m >= 1 && m >= n - 3; --m) {
    const std::string name = op::update_file_name(n, m);
    std::printf("  updates/%-22s %8llu B\n", name.c_str(),
                static_cast<unsigned long long>(file_size(meta + "updates/" + name)));
  }
  return 0;
}

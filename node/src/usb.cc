// have, export and import (outpost/node/usb.h, docs/usb.md).
#include "outpost/node/usb.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "assembly.h"
#include "node_internal.h"
#include "node_records.h"
#include "outpost/base/retry.h"
#include "outpost/crypto/tuf.h"
#include "outpost/node/chunk_store.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/packaging/layout.h"
#include "outpost/packaging/pack.h"
#include "outpost/packaging/update_file.h"
#include "outpost/sync/pack_source.h"
#include "planner.h"
#include "refresh.h"
#include "sync_context.h"
#include "sync_lock.h"
#include "transfer.h"

namespace outpost::node {

using namespace detail;
using packaging::RecordType;
using storage::Table;

namespace {

// The record that carries the exporting node's chunk index of one bundle version: the chunk
// ids in content order (the stick route of an import).
std::string bundle_index_record(const std::string& bundle, std::uint64_t version) {
  return "bundle-index/" + bundle + "/" + std::to_string(version) + ".index";
}

// The record that carries a patch the exporting node made from the version the target holds.
std::string bundle_patch_record(const std::string& bundle, std::uint64_t from, std::uint64_t to) {
  return "bundle-patch/" + bundle + "/" + std::to_string(from) + "-" + std::to_string(to) +
         ".patch";
}

// Patches are made only between content streams up to this size (the suffix array costs
// about five bytes per byte of the old stream), with a window a small importer can hold.
constexpr std::uint64_t kMaxPatchStream = 32u << 20;
constexpr std::uint64_t kPatchWindow = 32u << 20;

bool bundle_local(const Status& st) {
  RetryClass c = retry_class(st);
  return c == RetryClass::kNow || (c == RetryClass::kOperator && !st.IsResourceExhausted());
}

std::int64_t signed_version(const Bytes& bytes, const char* type) {
  if (bytes.empty()) return 0;
  auto env = tuf::parse_metadata(view(bytes), type);
  if (!env.ok()) return 0;
  const Json* s = env->find("signed");
  if (s == nullptr) return 0;
  auto v = s->get_int("version");
  return v.ok() ? *v : 0;
}

std::int64_t signed_expires(const Bytes& bytes, const char* type) {
  auto env = tuf::parse_metadata(view(bytes), type);
  if (!env.ok()) return 0;
  auto t = tuf::Timestamp::from_signed(*env->find("signed"));
  return t.ok() ? t->expires : 0;
}

// Every bundle record of one repository: name -> record.
Result<std::map<std::string, records::BundleRecord>> bundles_of(const storage::ReadTxn& txn,
                                                                const std::string& repo) {
  std::map<std::string, records::BundleRecord> out;
  Status bad;
  OUTPOST_RETURN_IF_ERROR(txn.scan(Table::kBundles, {}, [&](ByteView k, ByteView v) {
    auto r = records::parse_bundle(v);
    if (!r.ok()) return true;  // verify reports it; an export just leaves it out
    if (r->repo == repo && r->current > 0) out.emplace(std::string(as_chars(k)), std::move(*r));
    return true;
  }));
  return out;
}

FileSystem& fs_of(FileSystem* fs) { return fs != nullptr ? *fs : real_fs(); }

// One bundle's share of an export: its manifest, index and the chunks the target lacks.
struct BundlePlan {
  std::string name;
  std::uint64_t version = 0;
  std::uint64_t from = 0;  // what the have-file says the target holds (0: nothing)
  Bytes manifest;
  std::string manifest_path;  // the compressed copy's repository path ("....manifest.json.zst")
  Bytes manifest_zst;
  Bytes index;
  std::string index_path;
  std::vector<packaging::ChunkEntry> chunks;  // to write, unique
  Bytes patch;                                // instead of index and chunks, when smaller
  std::string patch_path;
  std::uint64_t bytes = 0;  // in the pack, records included
  bool update = false;      // the target holds an older version
};

struct RepoPlan {
  std::string repo;
  std::vector<std::pair<std::string, Bytes>> metadata;  // repository path -> bytes
  std::uint64_t metadata_bytes = 0;
  std::vector<BundlePlan> bundles;
  std::vector<std::string> left_out;
  std::int64_t timestamp_version = 0;
  std::int64_t snapshot_version = 0;
  bool up_to_date = false;
};

// A patch from version `from` (held here too) to b's version, when it is smaller than the
// chunks the target lacks: what the link would carry, made here since a node keeps no patch.
Status try_patch(storage::ReadTxn& txn, BundlePlan& b, std::uint64_t from) {
  auto old = load_version(txn, b.name, from);
  if (!old.ok()) return Status::Ok();  // not held here: chunks it is
  auto manifest = packaging::Manifest::parse(view(b.manifest));
  if (!manifest.ok()) return Status::Ok();
  if (packaging::content_stream_size(old->manifest) > kMaxPatchStream ||
      packaging::content_stream_size(*manifest) > kMaxPatchStream) {
    return Status::Ok();
  }
  OUTPOST_ASSIGN_OR_RETURN(auto index,
                           packaging::ChunkIndex::parse(view(b.index), manifest->chunking.max));
  HeldVersion now{std::move(*manifest), std::move(index)};
  packaging::Decompressor dec;
  OUTPOST_ASSIGN_OR_RETURN(Bytes from_stream, content_stream(txn, *old, dec));
  OUTPOST_ASSIGN_OR_RETURN(Bytes to_stream, content_stream(txn, now, dec));
  packaging::DeltaParams params;
  params.window = kPatchWindow;
  OUTPOST_ASSIGN_OR_RETURN(Bytes patch,
                           packaging::encode_delta(view(from_stream), view(to_stream), params));
  std::string path = bundle_patch_record(b.name, from, b.version);
  std::uint64_t patch_bytes =
      packaging::StickWriter::record_bytes(b.manifest_path.size(), b.manifest_zst.size()) +
      packaging::StickWriter::record_bytes(path.size(), patch.size());
  if (patch_bytes >= b.bytes) return Status::Ok();
  b.patch = std::move(patch);
  b.patch_path = std::move(path);
  b.chunks.clear();
  b.bytes = patch_bytes;
  return Status::Ok();
}

// For a target holding snapshot `from`: one metadata update file (update_file.h) in place of
// the snapshot, targets and delegated roles (each compressed) and the manifests (each
// compressed against the manifest the target holds), as the publisher writes for a link.
Status make_update_file(storage::ReadTxn& txn, const tuf::TrustedMetadata& t, RepoPlan& plan,
                        std::int64_t from, std::int64_t root_v) {
  packaging::Compressor comp(packaging::kUpdateLevel);
  packaging::UpdateFile file;
  file.latest_root = static_cast<std::uint32_t>(root_v);
  auto add = [&](std::string name, const Bytes& bytes, std::optional<ByteView> base) -> Status {
    OUTPOST_ASSIGN_OR_RETURN(
        auto entry, packaging::make_update_entry(std::move(name), view(bytes), base, comp));
    file.entries.push_back(std::move(entry));
    return Status::Ok();
  };
  // A target one snapshot behind this node holds what this node held before: the roles go
  // as deltas against those (found by their SHA-256 there), as a link's update file sends.
  OUTPOST_ASSIGN_OR_RETURN(tuf::TrustedMetadata before, load_previous(txn, plan.repo));
  const bool deltas =
      !before.snapshot.empty() && signed_version(before.snapshot, "snapshot") == from;
  auto base_of = [&](const Bytes& b) {
    return deltas && !b.empty() ? std::optional<ByteView>(view(b)) : std::nullopt;
  };
  std::set<std::string> replaced;
  auto meta = [&](std::string name, const Bytes& bytes, std::optional<ByteView> base) -> Status {
    replaced.insert(packaging::metadata_path(name));
    return add(std::move(name), bytes, base);
  };
  OUTPOST_RETURN_IF_ERROR(
      meta(packaging::versioned_metadata_name(plan.snapshot_version, "snapshot"), t.snapshot,
           base_of(before.snapshot)));
  OUTPOST_RETURN_IF_ERROR(
      meta(packaging::versioned_metadata_name(signed_version(t.targets, "targets"), "targets"),
           t.targets, base_of(before.targets)));
  for (const auto& [role, bytes] : t.delegated) {
    auto held = before.delegated.find(role);
    OUTPOST_RETURN_IF_ERROR(
        meta(packaging::versioned_metadata_name(signed_version(bytes, "targets"), role), bytes,
             held == before.delegated.end() ? std::nullopt : base_of(held->second)));
  }
  for (auto& b : plan.bundles) {
    std::optional<Bytes> base;
    if (b.from > 0) {
      OUTPOST_ASSIGN_OR_RETURN(
          base, get_file(txn, Table::kManifests, view(storage::version_key(b.name, b.from))));
    }
    std::string path = b.manifest_path.substr(0, b.manifest_path.size() - 4);  // no ".zst"
    OUTPOST_RETURN_IF_ERROR(
        add(path, b.manifest, base ? std::optional<ByteView>(view(*base)) : std::nullopt));
    b.bytes -= packaging::StickWriter::record_bytes(b.manifest_path.size(), b.manifest_zst.size());
    b.manifest_zst.clear();  // carried by the update file
  }
  OUTPOST_ASSIGN_OR_RETURN(Bytes encoded, packaging::encode_update_file(file));
  std::vector<std::pair<std::string, Bytes>> kept;
  for (auto& m : plan.metadata) {
    if (replaced.count(m.first)) {
      plan.metadata_bytes -= packaging::StickWriter::record_bytes(m.first.size(), m.second.size());
    } else {
      kept.push_back(std::move(m));
    }
  }
  const std::string name = packaging::update_file_path(plan.snapshot_version, from);
  plan.metadata_bytes += packaging::StickWriter::record_bytes(name.size(), encoded.size());
  kept.emplace_back(name, std::move(encoded));
  plan.metadata = std::move(kept);
  return Status::Ok();
}

Result<RepoPlan> plan_repo(Node& node, const std::string& repo, const packaging::HaveRepo* have,
                           const std::set<std::string>& only, std::set<crypto::Digest>& sent) {
  RepoPlan plan;
  plan.repo = repo;
  OUTPOST_ASSIGN_OR_RETURN(auto txn, node.store().read());
  OUTPOST_ASSIGN_OR_RETURN(tuf::TrustedMetadata t, load_trusted(txn, repo));
  if (t.timestamp.empty() || t.snapshot.empty() || t.targets.empty()) {
    return Status::FailedPrecondition("this node holds no verified metadata for repository " +
                                      repo + " yet: sync or import it first");
  }
  const std::int64_t root_v = signed_version(t.root, "root");
  plan.timestamp_version = signed_version(t.timestamp, "timestamp");
  plan.snapshot_version = signed_version(t.snapshot, "snapshot");
  auto add_meta = [&](const std::string& name, const Bytes& b) {
    plan.metadata.emplace_back(packaging::metadata_path(name), b);
    plan.metadata_bytes +=
        packaging::StickWriter::record_bytes(plan.metadata.back().first.size(), b.size());
  };
  // Every root version the target may lack, oldest first: a node that trusts root N accepts
  // N+2 only through N+1 (and, trusting the current one, asks for the next, which is absent).
  OUTPOST_ASSIGN_OR_RETURN(auto roots, load_root_history(txn, repo));
  const std::int64_t target_root = have != nullptr ? have->root : 0;
  std::vector<std::int64_t> roots_missing;
  for (std::int64_t v = std::max<std::int64_t>(target_root, 0) + 1; v <= root_v; ++v) {
    auto it = roots.find(v);
    if (it == roots.end()) {
      roots_missing.push_back(v);
      continue;
    }
    add_meta(packaging::versioned_metadata_name(v, "root"), it->second);
  }
  add_meta("timestamp.json", t.timestamp);
  add_meta(packaging::versioned_metadata_name(plan.snapshot_version, "snapshot"), t.snapshot);
  add_meta(packaging::versioned_metadata_name(signed_version(t.targets, "targets"), "targets"),
           t.targets);
  for (const auto& [role, bytes] : t.delegated) {
    add_meta(packaging::versioned_metadata_name(signed_version(bytes, "targets"), role), bytes);
  }
  if (have != nullptr) {
    if (have->root > root_v) {
      plan.left_out.push_back("the target trusts root version " + std::to_string(have->root) +
                              ", newer than this node's " + std::to_string(root_v));
    } else if (have->root > 0 && !roots_missing.empty()) {
      std::string list;
      for (auto v : roots_missing) list += (list.empty() ? "" : ", ") + std::to_string(v);
      plan.left_out.push_back("the target trusts root version " + std::to_string(have->root) +
                              "; this node no longer holds root version(s) " + list +
                              " of the ones in between (it trusted them before it kept a root "
                              "history): the target needs them from a link or its publisher");
    }
    if (have->timestamp > plan.timestamp_version) {
      plan.left_out.push_back("the target holds newer metadata (timestamp version " +
                              std::to_string(have->timestamp) + ") than this node (" +
                              std::to_string(plan.timestamp_version) + ")");
    }
  }
  OUTPOST_ASSIGN_OR_RETURN(auto held, bundles_of(txn, repo));
  for (const auto& name : only) {
    if (!held.count(name)) {
      return Status::InvalidArgument("bundle " + name + " is not held by this node for " + repo +
                                     ": see 'outpost ls'");
    }
  }
  for (const auto& [name, rec] : held) {
    if (!only.empty() && !only.count(name)) continue;
    BundlePlan b;
    b.name = name;
    b.version = rec.current;
    std::vector<std::uint64_t> target_versions;
    if (have != nullptr) {
      auto it = have->bundles.find(name);
      if (it != have->bundles.end()) target_versions = it->second;
    }
    if (!target_versions.empty()) {
      b.from = target_versions.back();
      b.update = true;
      if (b.from >= rec.current) {
        if (b.from > rec.current &&
            std::find(rec.versions.begin(), rec.versions.end(), b.from) == rec.versions.end()) {
          plan.left_out.push_back(name + ": the have-file claims version " +
                                  std::to_string(b.from) + ", which this node does not hold");
        }
        continue;  // the target is current (or ahead)
      }
    }
    OUTPOST_ASSIGN_OR_RETURN(
        auto m, get_file(txn, Table::kManifests, view(storage::version_key(name, rec.current))));
    OUTPOST_ASSIGN_OR_RETURN(
        auto ix, get_file(txn, Table::kIndexes, view(storage::version_key(name, rec.current))));
    if (!m || !ix) {
      plan.left_out.push_back(name + ": version " + std::to_string(rec.current) +
                              " is incomplete in this store: run 'outpost verify'");
      continue;
    }
    auto manifest = packaging::Manifest::parse(view(*m));
    auto index =
        packaging::ChunkIndex::parse(view(*ix), manifest.ok() ? manifest->chunking.max : 1);
    if (!manifest.ok() || !index.ok()) {
      plan.left_out.push_back(name +
                              ": its stored manifest or index is damaged: run "
                              "'outpost verify --repair'");
      continue;
    }
    // The manifest as the repository also serves it, zstd-compressed beside its signed name (a
    // file table compresses about tenfold); the importer checks the signed hash of what it
    // decompresses.
    b.manifest_path =
        packaging::manifest_file_path(name, crypto::hex(crypto::sha256(view(*m)))) + ".zst";
    {
      packaging::Compressor mc(19);
      OUTPOST_ASSIGN_OR_RETURN(b.manifest_zst, mc.compress(view(*m)));
    }
    b.index_path = bundle_index_record(name, rec.current);
    // Chunks the target holds: those of the versions it names that this node holds too.
    std::set<crypto::Digest> target_has;
    for (std::uint64_t v : target_versions) {
      OUTPOST_ASSIGN_OR_RETURN(auto old,
                               get_file(txn, Table::kIndexes, view(storage::version_key(name, v))));
      if (!old) continue;
      auto oi = packaging::ChunkIndex::parse(view(*old), 16u << 20);
      if (!oi.ok()) continue;
      for (const auto& e : oi->chunks) target_has.insert(e.id);
    }
    b.bytes = packaging::StickWriter::record_bytes(b.manifest_path.size(), b.manifest_zst.size()) +
              packaging::StickWriter::record_bytes(b.index_path.size(), ix->size());
    bool missing = false;
    std::set<crypto::Digest> mine;
    for (const auto& e : index->chunks) {
      if (target_has.count(e.id) || sent.count(e.id) || !mine.insert(e.id).second) continue;
      OUTPOST_ASSIGN_OR_RETURN(auto v, chunks::get(txn, {e.id.data(), e.id.size()}));
      if (!v) {
        missing = true;
        break;
      }
      OUTPOST_ASSIGN_OR_RETURN(records::StoredChunk c, records::parse_chunk_value(view(*v)));
      b.chunks.push_back(e);
      b.bytes += packaging::StickWriter::record_bytes(0, c.frame.size());
    }
    if (missing) {
      plan.left_out.push_back(name + ": chunks of version " + std::to_string(rec.current) +
                              " are missing from this store: run 'outpost verify --repair' and "
                              "sync");
      continue;
    }
    b.manifest = std::move(*m);
    b.index = std::move(*ix);
    if (b.update && !b.chunks.empty()) OUTPOST_RETURN_IF_ERROR(try_patch(txn, b, b.from));
    for (const auto& e : b.chunks) sent.insert(e.id);
    plan.bundles.push_back(std::move(b));
  }
  if (have != nullptr && plan.bundles.empty() && have->timestamp >= plan.timestamp_version) {
    plan.up_to_date = true;
  }
  if (have != nullptr && have->snapshot > 0 && have->snapshot < plan.snapshot_version) {
    OUTPOST_RETURN_IF_ERROR(make_update_file(txn, t, plan, have->snapshot, root_v));
  }
  return plan;
}

// The stored frame of a chunk (whatever level the node compressed it at: the importer checks
// each chunk against its id and the whole version against its signed content root).
Result<Bytes> stored_frame(storage::ReadTxn& txn, const crypto::Digest& id) {
  OUTPOST_ASSIGN_OR_RETURN(auto v, chunks::get(txn, {id.data(), id.size()}));
  if (!v) return Status::NotFound("chunk " + crypto::hex(id) + " went missing during export");
  OUTPOST_ASSIGN_OR_RETURN(records::StoredChunk c, records::parse_chunk_value(view(*v)));
  return Bytes(c.frame.begin(), c.frame.end());
}

// README.txt in other languages than English (export --lang). Placeholders: {date}, {for}.
// TEST TEXT, NOT YET CHECKED BY A TRANSLATOR: the French and Arabic below were written by
// the developers for testing; have a translator check them before an office relies on them.
struct ReadmeLanguage {
  std::string_view code;
  std::string_view text;
};
// clang-format off
constexpr ReadmeLanguage kReadmeLanguages[] = {
    {"fr",
     "PAQUET OUTPOST - documents pour un nœud outpost\r\n"
     "Contenu : des documents publiés (résolutions, statistiques) et les signatures "
     "qui prouvent qu'ils sont authentiques, écrits le {date}.\r\n"
     "Pour : {for}.\r\n\r\n"
     "Comment importer (sur l'ordinateur où tourne outpost) :\r\n"
     "  1. Branchez cette clé.\r\n"
     "  2. Lancez :  outpost import <emplacement de la clé>/outpost-pack\r\n"
     "  3. outpost vérifie chaque signature avant d'afficher quoi que ce soit. Il dit ce "
     "qu'il a importé et, s'il manque quelque chose, exactement quoi.\r\n\r\n"
     "Merci de ne pas renommer, modifier ni supprimer les fichiers de ce dossier. Copier le "
     "dossier entier sur une autre clé ou un autre ordinateur ne pose pas de "
     "problème.\r\n"},
    {"ar",
     "حزمة OUTPOST - وثائق لعقدة outpost\r\n"
     "ما هذا: وثائق منشورة (قرارات، إحصاءات) والتواقيع التي تثبت أنها أصلية، "
     "كُتبت في {date}.\r\n"
     "إلى: {for}.\r\n\r\n"
     "طريقة الاستيراد (على الحاسوب الذي يشغّل outpost):\r\n"
     "  1. أدخِل ذاكرة USB هذه.\r\n"
     "  2. شغّل:  outpost import <مكان الذاكرة>/outpost-pack\r\n"
     "  3. يتحقق outpost من كل توقيع قبل أن يعرض أي شيء، ثم يذكر ما استورده، "
     "وإن نقص شيء ذكره بالتحديد.\r\n\r\n"
     "يُرجى عدم إعادة تسمية ملفات هذا المجلد أو تعديلها أو حذفها. "
     "لا بأس بنسخ المجلد كاملاً إلى ذاكرة أو حاسوب آخر.\r\n"},
};
// clang-format on

const ReadmeLanguage* readme_language(std::string_view code) {
  for (const auto& l : kReadmeLanguages) {
    if (l.code == code) return &l;
  }
  return nullptr;
}

std::string fill_readme(std::string_view text, const std::string& date, const std::string& who) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 6, "{date}") == 0) {
      out += date;
      i += 6;
    } else if (text.compare(i, 5, "{for}") == 0) {
      out += who;
      i += 5;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string readme_text(const std::vector<RepoPlan>& plans, const std::string& made_for,
                        std::int64_t now, const std::string& extra,
                        const std::vector<std::string>& languages) {
  std::string t;
  bool other = false;
  for (const auto& l : languages) other = other || l != "en";
  // A UTF-8 byte order mark when there is more than English: Notepad then shows the accents
  // and the Arabic script right on every Windows version.
  if (other) t += "\xEF\xBB\xBF";
  t += "OUTPOST PACK - documents for an outpost node\r\n";
  t += "============================================\r\n\r\n";
  t += "What this is: published documents (resolutions, statistics) and the signatures\r\n";
  t += "that prove they are genuine, written " + format_utc(now) + ".\r\n";
  t += "For: " + made_for + ".\r\n\r\n";
  t += "How to import (on the computer that runs outpost):\r\n";
  t += "  1. Plug in this stick.\r\n";
  t += "  2. Run:  outpost import <where the stick is>/outpost-pack\r\n";
  t += "  3. outpost checks every signature before it shows anything. It says what it\r\n";
  t += "     imported and, if something is missing, exactly what.\r\n\r\n";
  t += "Please do not rename, edit or delete the files in this folder. Copying the whole\r\n";
  t += "folder to another stick or computer is fine.\r\n\r\nWhat the pack holds:\r\n";
  for (const auto& p : plans) {
    t += "  repository " + p.repo + ": " + std::to_string(p.bundles.size()) + " bundle(s)\r\n";
    for (const auto& b : p.bundles) {
      t += "    " + b.name + " version " + std::to_string(b.version) + "\r\n";
    }
    for (const auto& l : p.left_out) t += "    left out: " + l + "\r\n";
  }
  for (const auto& code : languages) {
    const ReadmeLanguage* l = readme_language(code);
    if (l == nullptr) continue;  // "en", or refused before anything was written
    t += "\r\n----------------------------------------------------------------------\r\n";
    t += fill_readme(l->text, format_utc(now), made_for);
  }
  if (!extra.empty()) t += "\r\n" + extra + "\r\n";
  return t;
}

// Removes volumes no index in dir names, and temp files of unfinished writes.
void clean_folder(FileSystem& fs, const std::string& dir) {
  auto entries = fs.list_dir(dir);
  if (!entries.ok()) return;
  std::set<std::string> keep;
  for (const auto& e : *entries) {
    if (!packaging::is_stick_index_name(e.name)) continue;
    auto b = fs.read_file(join_path(dir, e.name), packaging::kMaxStickIndexBytes);
    if (!b.ok()) return;  // unsure what is in use: keep everything
    auto idx = packaging::StickIndex::parse(view(*b));
    if (!idx.ok()) return;
    for (const auto& v : idx->volumes) keep.insert(v.name);
  }
  for (const auto& e : *entries) {
    bool stale_volume = packaging::is_volume_name(e.name) && !keep.count(e.name);
    bool temp =
        e.name.rfind(".pending.pack.tmp-", 0) == 0 || e.name.find(".tmp") != std::string::npos;
    if ((stale_volume || temp) && e.type == FileType::kRegular) {
      (void)fs.remove(join_path(dir, e.name));
    }
  }
  (void)fs.fsync_dir(dir);
}

// Write batches of an import, committed in the background while the next fills (two in
// memory at most): larger ones mean fewer flushes, and hold their frames in memory. The store
// pages a batch maps are dropped every few puts (ChunkBatch), so the batches' bytes are what
// grows: on a 1 GB pack of ~16 KB chunks, two of 4 MB / 256 chunks peaked at 60 MB resident.
constexpr std::size_t kImportBatchBytes = 4u << 20;
constexpr std::size_t kImportBatchCount = 256;

// The hashing half of an import, on a second thread (a stick's import is CPU-bound: BLAKE2b
// of each chunk against its id and of the whole content stream against the signed root).
// The import thread reads and decompresses; this thread checks each piece handed to it, in
// order, and feeds the content root. A chunk counts as verified only once processed() has
// passed its sequence number without an error, so nothing unverified reaches the store.
// At most kMaxQueued bytes wait at once (bounded memory). Thread-safety: one producer thread.
class ImportHasher {
 public:
  static constexpr std::size_t kMaxQueued = 2u << 20;
  static constexpr std::size_t kWakeBytes = 512u << 10;
  static constexpr std::size_t kWakePieces = 256;

  ImportHasher() : thread_([this] { run(); }) {}
  ~ImportHasher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    work_.notify_one();
    thread_.join();
  }
  ImportHasher(const ImportHasher&) = delete;
  ImportHasher& operator=(const ImportHasher&) = delete;

  // Each call is one piece, numbered from 0 in call order; returns its number.
  std::uint64_t add_file(const packaging::FileEntry& file) {
    Piece p;
    p.file = &file;
    return push(std::move(p));
  }
  // Content bytes, checked against `id` first when it is given (a chunk from the pack).
  std::uint64_t add_bytes(Bytes raw, const crypto::Digest* id, std::string name) {
    Piece p;
    p.raw = std::move(raw);
    if (id != nullptr) p.id = *id;
    p.name = std::move(name);
    return push(std::move(p));
  }
  // Pieces processed so far, and the first error (pieces from failed() on do not count).
  std::uint64_t processed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return processed_;
  }
  bool verified(std::uint64_t seq) const {
    std::lock_guard<std::mutex> lock(mu_);
    return seq < processed_ && seq < failed_at_;
  }
  // Waits until every piece handed over is processed; then the first error, if any.
  Status wait_idle() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    if (idle_) work_.notify_one();
    done_.wait(lock, [&] { return processed_ == next_; });
    --waiting_;
    return error_;
  }
  Result<crypto::Digest> finish() {
    OUTPOST_RETURN_IF_ERROR(wait_idle());
    return hasher_.finish();
  }

 private:
  struct Piece {
    const packaging::FileEntry* file = nullptr;
    Bytes raw;
    std::optional<crypto::Digest> id;
    std::string name;
  };
  bool worth_waking() const { return queued_ >= kWakeBytes || queue_.size() >= kWakePieces; }
  std::uint64_t push(Piece p) {
    std::unique_lock<std::mutex> lock(mu_);
    // Wait for room unless the queue is empty (one piece may exceed the bound) or hashing
    // already failed (the import thread will stop at its next check).
    ++waiting_;
    auto room = [&] {
      return queued_ + p.raw.size() <= kMaxQueued || queue_.empty() || !error_.ok();
    };
    if (!room() && idle_) work_.notify_one();
    done_.wait(lock, room);
    --waiting_;
    queued_ += p.raw.size();
    queue_.push_back(std::move(p));
    const std::uint64_t seq = next_++;
    // Chunks are ~16 KB: the hashing thread sleeps until 1 MB waits (or the import thread
    // waits for it), so it is woken once per MB, not once per chunk.
    const bool wake = idle_ && worth_waking();
    lock.unlock();
    if (wake) work_.notify_one();
    return seq;
  }
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      idle_ = true;
      work_.wait(lock,
                 [&] { return closing_ || (!queue_.empty() && (waiting_ > 0 || worth_waking())); });
      idle_ = false;
      if (queue_.empty()) return;  // closing
      // Everything queued, processed with the lock released, then counted at once.
      std::deque<Piece> work;
      work.swap(queue_);
      const bool failed_before = !error_.ok();
      lock.unlock();
      Status first = Status::Ok();
      std::size_t failed = work.size();
      std::size_t bytes = 0;
      for (std::size_t i = 0; i < work.size(); ++i) {
        bytes += work[i].raw.size();
        if (failed_before || !first.ok()) continue;
        first = process(work[i]);
        if (!first.ok()) failed = i;
      }
      const std::size_t n = work.size();
      work.clear();  // frees the bytes before the import thread may queue more
      lock.lock();
      queued_ -= bytes;
      if (!first.ok() && error_.ok()) {
        error_ = first;
        failed_at_ = processed_ + failed;
      }
      processed_ += n;
      if (waiting_ > 0) done_.notify_all();
    }
  }
  Status process(const Piece& p) {
    if (p.file != nullptr) return hasher_.add_file(p.file->path, p.file->mode, p.file->size);
    if (p.id && !crypto::digest_equal(crypto::blake2b(view(p.raw)), *p.id)) {
      return Status::Corruption(p.name +
                                " does not match its hash (damaged or tampered): not stored");
    }
    return hasher_.update(view(p.raw));
  }

  packaging::ContentHasher hasher_;  // only the hashing thread touches it until finish()
  mutable std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable done_;
  std::deque<Piece> queue_;
  std::size_t queued_ = 0;
  std::uint64_t next_ = 0;
  std::uint64_t processed_ = 0;
  std::uint64_t failed_at_ = UINT64_MAX;
  Status error_ = Status::Ok();
  int waiting_ = 0;    // import-thread waits in progress (push, wait_idle)
  bool idle_ = false;  // the hashing thread waits for work
  bool closing_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// One bundle version by the stick route: the exporter's chunk index, the chunks the store
// lacks (each checked against its id), then the content root against the signed manifest.
Result<SyncItem> import_bundle(SyncContext& ctx, sync::PackSource& pack, Pending& p) {
  const auto version = static_cast<std::uint64_t>(p.manifest.version);
  const std::string what = p.bundle + " version " + std::to_string(version);
  if (p.record) {
    // The patch the exporter made from the version held here, checked against the signed root.
    const std::string patch_path = bundle_patch_record(p.bundle, p.record->current, version);
    if (pack.has_file(patch_path)) {
      OUTPOST_ASSIGN_OR_RETURN(
          Bytes patch, pack.read_file(patch_path, packaging::patch_length_limit(
                                                      packaging::content_stream_size(p.manifest))));
      OUTPOST_RETURN_IF_ERROR(accept_unlisted_patch(ctx, p, p.record->current, patch)
                                  .With("applying the patch from the pack"));
      SyncItem item;
      item.bundle = p.bundle;
      item.from = p.record->current;
      item.to = version;
      item.route = RouteKind::kPatch;
      item.bytes = p.manifest.content_size;
      return item;
    }
  }
  auto bytes = pack.read_file(bundle_index_record(p.bundle, version), packaging::kMaxIndexBytes);
  if (!bytes.ok()) {
    if (bytes.error().IsNotFound()) {
      return Status::NotFound(what +
                              " is not in the pack (left out by the export, or on a "
                              "missing volume)");
    }
    return bytes.error();
  }
  OUTPOST_ASSIGN_OR_RETURN(packaging::ChunkIndex index,
                           packaging::ChunkIndex::parse(view(*bytes), p.manifest.chunking.max));
  OUTPOST_RETURN_IF_ERROR(index.check_against(p.manifest));
  OUTPOST_ASSIGN_OR_RETURN(auto missing, missing_chunks(ctx, index));
  SyncItem item;
  item.bundle = p.bundle;
  item.from = p.record ? p.record->current : 0;
  item.to = version;
  item.route = RouteKind::kChunks;
  item.bytes = p.manifest.content_size;
  item.chunks_fetched = missing.size();
  item.chunks_held = first_occurrences(index).size() - missing.size();
  std::vector<bool> take(index.chunks.size(), false);
  // Progress in content bytes of the chunks to take.
  std::uint64_t total = 0;
  for (std::size_t i : missing) {
    take[i] = true;
    total += index.chunks[i].raw_length;
  }
  SyncProgress progress{p.bundle, "stick", 0, total};
  // One pass in content order: each chunk the pack brings is read, decompressed and checked
  // against its id once, and its bytes go on into the content root; chunks already held
  // (or met earlier in this version) are read back from the store for the root. The checks
  // and the root run on a second thread (ImportHasher); a chunk goes into the write batch
  // only once checked. The version counts only when the root matches the signed one
  // (accept_with_root).
  packaging::Decompressor dec;
  ImportHasher hasher;
  ChunkBatch batch(ctx.store, kImportBatchBytes, kImportBatchCount,
                   ChunkBatch::Writes::kBackground);
  struct Staged {
    std::uint64_t seq;
    crypto::Digest id;
    std::uint32_t raw_length;
    Bytes frame;
  };
  std::deque<Staged> staged;  // read and decompressed, not yet checked
  // Taken chunks not known to be in the store: staged (kStaged) or the number of the add()
  // that put them in the batch (stored once batch.stored() reaches it).
  constexpr std::uint64_t kStaged = UINT64_MAX;
  std::map<crypto::Digest, std::uint64_t> unflushed;
  std::uint64_t adds = 0;
  std::optional<storage::ReadTxn> txn;  // for held chunks; ended before every write
  PageBudget pages(ctx.store);
  // Moves the checked chunks into the batch (which commits as it fills); with `all`, waits
  // for every check and commits the batch. A failed check stores what was checked before it
  // and returns the failure.
  auto settle = [&](bool all) -> Status {
    Status checked = all ? hasher.wait_idle() : Status::Ok();
    while (!staged.empty() && hasher.verified(staged.front().seq)) {
      Staged& c = staged.front();
      txn.reset();
      const std::uint64_t stored_before = batch.stored();
      OUTPOST_RETURN_IF_ERROR(batch.add(c.id, c.raw_length, view(c.frame)));
      unflushed[c.id] = ++adds;
      staged.pop_front();
      if (batch.stored() != stored_before) {  // a commit completed: forget what it stored
        std::erase_if(unflushed, [&](const auto& u) { return u.second <= batch.stored(); });
      }
    }
    if (!all && staged.empty()) return Status::Ok();
    if (!all) {
      // Something is staged: stop early only if its check failed.
      Status e = Status::Ok();
      if (hasher.processed() > staged.front().seq) e = hasher.wait_idle();
      if (e.ok()) return Status::Ok();
      checked = e;
    }
    txn.reset();
    OUTPOST_RETURN_IF_ERROR(batch.flush());
    return checked;
  };
  std::size_t next = 0;
  for (std::size_t f = 0; f < p.manifest.files.size(); ++f) {
    const auto& file = p.manifest.files[f];
    hasher.add_file(file);
    for (std::uint32_t c = 0; c < index.file_chunks[f]; ++c, ++next) {
      const auto& e = index.chunks[next];
      if (!take[next]) {
        // Taken earlier in this version and not stored yet: store everything first.
        if (auto u = unflushed.find(e.id); u != unflushed.end() && u->second > batch.stored()) {
          OUTPOST_RETURN_IF_ERROR(settle(true));
          unflushed.clear();
        }
        if (!txn) {
          OUTPOST_ASSIGN_OR_RETURN(auto t, ctx.store.read());
          txn.emplace(std::move(t));
        }
        OUTPOST_ASSIGN_OR_RETURN(Bytes raw, read_chunk(*txn, dec, e));
        pages.add(raw.size());
        hasher.add_bytes(std::move(raw), nullptr, {});
        continue;
      }
      auto frame = pack.chunk_frame(e.id);
      if (!frame.ok()) {
        OUTPOST_RETURN_IF_ERROR(settle(true));  // keep what verified
        if (frame.error().IsNotFound()) {
          return Status::NotFound(what + ": chunk " + crypto::hex(e.id) +
                                  " is not in the pack (a volume is missing or damaged)");
        }
        return frame.error();
      }
      std::string name = "chunk " + crypto::hex(e.id) + " of " + what;
      auto raw = dec.decompress(view(*frame), e.raw_length, name);
      if (!raw.ok()) {
        OUTPOST_RETURN_IF_ERROR(settle(true));
        return raw.error();
      }
      const std::uint64_t seq = hasher.add_bytes(std::move(*raw), &e.id, std::move(name));
      staged.push_back(Staged{seq, e.id, e.raw_length, std::move(*frame)});
      unflushed[e.id] = kStaged;
      OUTPOST_RETURN_IF_ERROR(settle(false));
      progress.done += e.raw_length;
      if (ctx.options.progress) ctx.options.progress(progress);
      if (ctx.options.stop.stop_requested()) {
        OUTPOST_RETURN_IF_ERROR(settle(true));
        return Status::Cancelled("import stopped on request");
      }
    }
  }
  txn.reset();
  if (next != index.chunks.size()) {
    return Status::Corruption("the chunk index of " + what + " does not match its manifest");
  }
  OUTPOST_RETURN_IF_ERROR(settle(true));
  auto root = hasher.finish();
  if (!root.ok()) return root.error().With(what);
  OUTPOST_RETURN_IF_ERROR(accept_with_root(ctx, p, *root, *bytes));
  return item;
}

// A sync whose source is the pack (refresh and plan exactly as sync.md says), with the stick
// route for the content.
Result<SyncReport> import_repository(storage::Store& store, sync::PackSource& pack,
                                     sync::MeteredSource& source, const std::string& repo,
                                     const std::string& location, std::int64_t now,
                                     const SyncOptions& options) {
  SyncContext ctx{
      .store = store,
      .source = source,
      .options = options,
      .repo = repo,
      .location = location,
      .now = now,
      .trusted = {},
      .overlay = {},
  };
  SyncReport report;
  report.repo = repo;
  report.location = location;
  OUTPOST_ASSIGN_OR_RETURN(Refreshed refreshed, refresh(ctx));
  // Bundles whose new version the pack does not carry (left out by --bundle or --max-bytes, or
  // on a missing volume) are listed as such; the rest is planned as a sync plans it.
  std::vector<FailedBundle> absent;
  for (auto it = refreshed.targets.begin(); it != refreshed.targets.end();) {
    auto bundle = packaging::bundle_of_target(it->first);
    std::uint64_t declared = 0;
    if (const Json* o = it->second.custom.find("outpost"); o != nullptr) {
      if (const Json* v = o->find("version"); v != nullptr && v->is_int() && v->as_int() > 0) {
        declared = static_cast<std::uint64_t>(v->as_int());
      }
    }
    if (!bundle || packaging::validate_bundle_name(*bundle).ok() == false) {
      ++it;
      continue;
    }
    std::uint64_t held = 0;
    {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, store.read());
      OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, *bundle));
      if (rec) held = rec->current;
    }
    if ((declared != 0 && held == declared) ||
        pack.has_file(bundle_index_record(*bundle, declared)) ||
        (held != 0 && pack.has_file(bundle_patch_record(*bundle, held, declared)))) {
      ++it;
      continue;
    }
    absent.push_back(FailedBundle{
        *bundle, held, declared,
        Status::NotFound(*bundle + " version " + std::to_string(declared) +
                         " is not in the pack (left out by the export, or on a missing "
                         "volume): ask for another stick")});
    it = refreshed.targets.erase(it);
  }
  OUTPOST_ASSIGN_OR_RETURN(std::vector<Pending> pending,
                           plan_bundles(ctx, refreshed.targets, report));
  report.failed = std::move(absent);
  for (auto& p : pending) {
    if (options.stop.stop_requested()) return Status::Cancelled("import stopped on request");
    auto item = import_bundle(ctx, pack, p);
    if (item.ok()) {
      report.updated.push_back(*item);
      continue;
    }
    if (!bundle_local(item.error())) return item.error().With(p.bundle);
    report.failed.push_back(
        FailedBundle{p.bundle, p.planned.from, p.planned.to, item.error().With(p.bundle)});
  }
  report.unchanged = refreshed.unchanged && report.updated.empty();
  const sync::TransferStats stats = source.stats();
  report.bytes_read = stats.total();
  report.requests = stats.requests;
  return report;
}

}  // namespace

Result<packaging::HaveFile> make_have(Node& node) {
  OUTPOST_ASSIGN_OR_RETURN(auto subs, node.subscriptions());
  packaging::HaveFile have;
  have.created = node.clock().now();
  OUTPOST_ASSIGN_OR_RETURN(auto txn, node.store().read());
  for (const auto& sub : subs) {
    packaging::HaveRepo r;
    r.id = sub.id;
    OUTPOST_ASSIGN_OR_RETURN(tuf::TrustedMetadata t, load_trusted(txn, sub.id));
    r.root = signed_version(t.root, "root");
    r.timestamp = signed_version(t.timestamp, "timestamp");
    r.snapshot = signed_version(t.snapshot, "snapshot");
    OUTPOST_ASSIGN_OR_RETURN(auto held, bundles_of(txn, sub.id));
    for (auto& [name, rec] : held) {
      std::vector<std::uint64_t> v = rec.versions;
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      v.erase(std::remove(v.begin(), v.end(), 0u), v.end());
      r.bundles.emplace(name, std::move(v));
    }
    have.repos.push_back(std::move(r));
  }
  return have;
}

Result<ExportReport> export_pack(Node& node, const ExportOptions& options) {
  FileSystem& fs = fs_of(options.fs);
  for (const auto& code : options.readme_languages) {
    if (code != "en" && readme_language(code) == nullptr) {
      std::string have = "en";
      for (const auto& l : kReadmeLanguages) have += ", " + std::string(l.code);
      return Status::InvalidArgument("no README.txt text in language '" + code + "': outpost has " +
                                     have + "; put other words in with --note TEXT");
    }
  }
  const std::int64_t now = node.clock().now();
  std::optional<packaging::HaveFile> have;
  if (!options.have_file.empty()) {
    auto bytes = fs.read_file(options.have_file, packaging::kMaxHaveFileBytes);
    if (!bytes.ok()) {
      if (bytes.error().IsResourceExhausted()) {
        return Status::Corruption("the have-file " + options.have_file +
                                  " is larger than 4 MB: not a have-file");
      }
      return bytes.error().With("reading the have-file");
    }
    auto parsed = packaging::HaveFile::parse(view(*bytes));
    if (!parsed.ok()) return parsed.error().With(options.have_file);
    have = std::move(*parsed);
  }
  OUTPOST_ASSIGN_OR_RETURN(auto subs, node.subscriptions());
  std::set<std::string> only(options.bundles.begin(), options.bundles.end());
  std::vector<RepoPlan> plans;
  std::set<crypto::Digest> sent;
  std::set<std::string> matched;
  for (const auto& sub : subs) {
    const packaging::HaveRepo* hr = nullptr;
    if (have) {
      for (const auto& r : have->repos) {
        if (r.id == sub.id) hr = &r;
      }
      if (hr == nullptr) continue;
    }
    std::set<std::string> mine;
    OUTPOST_ASSIGN_OR_RETURN(auto rtxn, node.store().read());
    OUTPOST_ASSIGN_OR_RETURN(auto held, bundles_of(rtxn, sub.id));
    end(rtxn);
    for (const auto& b : only) {
      if (held.count(b)) {
        mine.insert(b);
        matched.insert(b);
      }
    }
    if (!only.empty() && mine.empty()) continue;
    OUTPOST_ASSIGN_OR_RETURN(RepoPlan p, plan_repo(node, sub.id, hr, mine, sent));
    plans.push_back(std::move(p));
  }
  for (const auto& b : only) {
    if (!matched.count(b)) {
      return Status::InvalidArgument("bundle " + b + " is not held by this node: see 'outpost ls'");
    }
  }
  if (plans.empty()) {
    if (have) {
      std::string ids;
      for (const auto& r : have->repos) ids += (ids.empty() ? "" : ", ") + r.id;
      return Status::InvalidArgument("the have-file is for repositories (" +
                                     (ids.empty() ? std::string("none") : ids) +
                                     ") this node does not hold: export from a node subscribed "
                                     "to them");
    }
    return Status::FailedPrecondition("this node holds no repository: nothing to export");
  }

  // Priority: metadata first, then updates of what the target holds, then new bundles, each
  // smallest first; --max-bytes leaves out what does not fit, and says so.
  std::uint64_t total = 4096;  // README and index
  for (auto& p : plans) {
    if (p.up_to_date) continue;
    total += p.metadata_bytes;
    std::stable_sort(p.bundles.begin(), p.bundles.end(),
                     [](const BundlePlan& a, const BundlePlan& b) {
                       if (a.update != b.update) return a.update;
                       return a.bytes < b.bytes;
                     });
  }
  if (options.max_bytes > 0 && total > options.max_bytes) {
    return Status::ResourceExhausted("--max-bytes " + std::to_string(options.max_bytes) +
                                     " does not leave room for the signed metadata (" +
                                     std::to_string(total) + " bytes): allow more");
  }
  for (auto& p : plans) {
    std::vector<BundlePlan> kept;
    for (auto& b : p.bundles) {
      if (options.max_bytes > 0 && total + b.bytes > options.max_bytes) {
        p.left_out.push_back(b.name + " version " + std::to_string(b.version) + " (" +
                             std::to_string(b.bytes) + " bytes): does not fit in --max-bytes");
        continue;
      }
      total += b.bytes;
      kept.push_back(std::move(b));
    }
    p.bundles = std::move(kept);
  }
  // Volumes are written whole: each one costs a magic and a trailer more.
  total += (total / options.volume_bytes + 1) *
           (sizeof packaging::kPackMagic + packaging::kTrailerBytes);

  const std::string folder = join_path(options.to, std::string(packaging::kStickFolder));
  auto to_st = fs.stat(options.to);
  if (!to_st.ok() || to_st->type != FileType::kDirectory) {
    return Status::NotFound("no folder at " + options.to + ": is the stick mounted there?");
  }
  OUTPOST_ASSIGN_OR_RETURN(std::uint64_t free, fs.free_space(options.to));
  if (total > free) {
    return Status::ResourceExhausted(
        "the pack needs " + std::to_string(total) + " bytes but " + options.to + " has " +
        std::to_string(free) +
        " free: nothing was written; use a larger stick, free space, or "
        "--max-bytes " +
        std::to_string(free));
  }
  OUTPOST_RETURN_IF_ERROR(fs.make_dirs(folder));
  clean_folder(fs, folder);  // temp files a pulled stick left behind

  ExportReport report;
  report.folder = folder;
  ExportProgress progress{0, total, 0};
  std::string made_for =
      have ? "the node whose have-file was given (" + format_utc(have->created) + ")"
           : "any node subscribed to these repositories (everything)";
  for (const auto& p : plans) {
    ExportedRepo out;
    out.repo = p.repo;
    out.left_out = p.left_out;
    out.up_to_date = p.up_to_date;
    if (p.up_to_date) {
      report.repos.push_back(std::move(out));
      continue;
    }
    OUTPOST_ASSIGN_OR_RETURN(auto writer,
                             packaging::StickWriter::create(folder, fs, options.volume_bytes));
    auto tick = [&]() {
      if (options.progress) {
        progress.done = report.bytes + writer->bytes_written();
        options.progress(progress);
      }
    };
    for (const auto& [path, bytes] : p.metadata) {
      OUTPOST_RETURN_IF_ERROR(writer->add_file(RecordType::kMetadata, path, view(bytes)));
    }
    OUTPOST_ASSIGN_OR_RETURN(auto txn, node.store().read());
    PageBudget pages(node.store());
    for (const auto& b : p.bundles) {
      if (!b.manifest_zst.empty()) {
        OUTPOST_RETURN_IF_ERROR(
            writer->add_file(RecordType::kTarget, b.manifest_path, view(b.manifest_zst)));
      }
      if (!b.patch.empty()) {
        OUTPOST_RETURN_IF_ERROR(writer->add_file(RecordType::kPatch, b.patch_path, view(b.patch)));
        tick();
        out.bundles.push_back(packaging::StickBundle{b.name, b.version, b.from, b.bytes});
        continue;
      }
      OUTPOST_RETURN_IF_ERROR(writer->add_file(RecordType::kIndex, b.index_path, view(b.index)));
      for (const auto& e : b.chunks) {
        OUTPOST_ASSIGN_OR_RETURN(Bytes frame, stored_frame(txn, e.id));
        OUTPOST_RETURN_IF_ERROR(writer->add_chunk(e.id, e.raw_length, view(frame)));
        pages.add(frame.size());
        tick();
      }
      out.bundles.push_back(packaging::StickBundle{b.name, b.version, b.from, b.bytes});
    }
    end(txn);
    OUTPOST_ASSIGN_OR_RETURN(auto volumes, writer->finish());
    progress.files += volumes.size();
    packaging::StickIndex index;
    index.repo = p.repo;
    index.created = now;
    index.made_by = "outpost node at " + node.store().dir();
    index.made_for = made_for;
    index.timestamp_version = p.timestamp_version;
    index.snapshot_version = p.snapshot_version;
    index.volumes = volumes;
    index.bundles = out.bundles;
    index.left_out = p.left_out;
    for (const auto& v : volumes) out.bytes += v.size;
    out.volumes = volumes.size();
    report.bytes += out.bytes;
    // README first, the index last: a stick pulled before this point still has the old index
    // naming the old volumes, which are all still there.
    std::string readme =
        readme_text(plans, made_for, now, options.readme_extra, options.readme_languages);
    OUTPOST_RETURN_IF_ERROR(fs.write_file_atomic(
        join_path(folder, std::string(packaging::kStickReadme)), as_bytes(readme)));
    out.index_path = join_path(folder, packaging::stick_index_name(p.repo));
    OUTPOST_RETURN_IF_ERROR(fs.write_file_atomic(out.index_path, view(index.encode())));
    tick();
    report.repos.push_back(std::move(out));
  }
  clean_folder(fs, folder);
  return report;
}

Result<ImportReport> import_pack(Node& node, const std::string& location,
                                 const ImportOptions& options) {
  FileSystem& fs = fs_of(options.fs);
  OUTPOST_ASSIGN_OR_RETURN(auto indexes, sync::find_stick_indexes(location, fs));
  ImportReport report;
  for (const auto& index_path : indexes) {
    OUTPOST_ASSIGN_OR_RETURN(auto pack, sync::PackSource::open(index_path, fs));
    ImportedRepo r;
    r.index_path = index_path;
    r.repo = pack->index().repo;
    r.problems = pack->problems();
    OUTPOST_ASSIGN_OR_RETURN(auto subs, node.subscriptions());
    bool trusted = std::any_of(subs.begin(), subs.end(),
                               [&](const Subscription& s) { return s.id == r.repo; });
    if (!trusted) {
      if (options.root_pubkey) {
        SubscribeOptions so;
        so.root_pubkey = options.root_pubkey;
        so.accept_expired_timestamp = true;  // only a stick reaches here
        so.opened = pack.get();              // scanned once, not twice
        auto sub = node.subscribe(index_path, so);
        if (!sub.ok()) return sub.error().With("trusting the repository of " + index_path);
        r.repo = sub->id;
      } else {
        std::string keys;
        Result<Bytes> root = Status::NotFound("no root in the pack");
        for (int v = 1; v <= 1024 && !root.ok(); ++v) {
          const std::string name =
              packaging::metadata_path(packaging::versioned_metadata_name(v, "root"));
          if (pack->has_file(name)) root = pack->read_file(name, 512 * 1024);
        }
        if (root.ok()) {
          auto env = tuf::parse_metadata(view(*root), "root");
          if (env.ok()) {
            auto parsed = tuf::Root::from_signed(*env->find("signed"));
            if (parsed.ok()) {
              for (const auto& id : parsed->roles["root"].keyids) {
                auto k = parsed->keys.find(id);
                if (k != parsed->keys.end()) keys += (keys.empty() ? "" : ", ") + k->second.hex();
              }
            }
          }
        }
        return Status::FailedPrecondition(
            "the pack at " + index_path + " is for repository " + r.repo +
            ", which this node does not trust; its root key" +
            (keys.empty() ? " is unknown" : ": " + keys) +
            ". Check the key with the publisher, then run 'outpost import " + location +
            " --root-pubkey HEX'");
      }
    }
    // A pack older than what the node holds changes nothing.
    std::int64_t held_ts = 0;
    {
      OUTPOST_ASSIGN_OR_RETURN(auto txn, node.store().read());
      auto t = load_trusted(txn, r.repo);
      if (t.ok()) held_ts = signed_version(t->timestamp, "timestamp");
    }
    auto pack_ts = pack->read_file("metadata/timestamp.json", 16 * 1024);
    if (!pack_ts.ok()) {
      return Status::Corruption("the pack at " + index_path +
                                " carries no timestamp metadata (its first volume is missing or "
                                "damaged): nothing was imported; export it again")
          .With(r.problems.empty() ? pack_ts.error().message() : r.problems.front());
    }
    const std::int64_t pack_ts_v = signed_version(*pack_ts, "timestamp");
    if (pack_ts_v < held_ts) {
      r.note = "the pack (timestamp version " + std::to_string(pack_ts_v) +
               ") is older than what this node holds (version " + std::to_string(held_ts) +
               "): nothing changed";
      report.repos.push_back(std::move(r));
      continue;
    }
    const std::int64_t now = node.clock().now();
    r.expired_timestamp = signed_expires(*pack_ts, "timestamp") < now;
    r.confirmed_as_of = std::min(now, pack->index().created);
    SyncOptions so;
    so.progress = options.progress;
    so.stop = options.stop;
    so.accept_expired_timestamp = true;
    OUTPOST_ASSIGN_OR_RETURN(
        SyncLock lock, SyncLock::acquire(node.store().dir(), r.repo, so.lock_wait_s, so.stop));
    sync::MeteredSource metered(*pack, UINT64_MAX);
    auto synced = import_repository(node.store(), *pack, metered, r.repo, index_path, now, so);
    if (!synced.ok()) {
      // Damage found while reading the volumes usually explains what the import then missed.
      Status e = synced.error().With("importing " + index_path);
      if (!r.problems.empty()) e = Status(e.code(), e.message() + " (" + r.problems.front() + ")");
      return e;
    }
    r.sync = std::move(*synced);
    // What the pack brought was confirmed current when the pack was made, not now.
    if (!r.sync.updated.empty()) {
      OUTPOST_RETURN_IF_ERROR(node.store().update([&](storage::WriteTxn& txn) -> Status {
        for (const auto& item : r.sync.updated) {
          OUTPOST_ASSIGN_OR_RETURN(auto rec, get_bundle(txn, item.bundle));
          if (!rec) continue;
          rec->confirmed = std::min(rec->confirmed, r.confirmed_as_of);
          OUTPOST_RETURN_IF_ERROR(
              txn.put(Table::kBundles, as_bytes(item.bundle), view(records::encode(*rec))));
        }
        return Status::Ok();
      }));
    }
    report.repos.push_back(std::move(r));
  }
  return report;
}

}  // namespace outpost::node

#include "outpost/sync/pack_source.h"

#include <algorithm>
#include <cstring>

#include "outpost/packaging/chunk_index.h"
#include "outpost/packaging/layout.h"

namespace outpost::sync {

namespace {

constexpr std::uint32_t kMaxChunk = 16u << 20;

std::string dir_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Index files in dir, refusing folders too large to be a pack folder.
Result<std::vector<std::string>> indexes_in(const std::string& dir, FileSystem& fs) {
  OUTPOST_ASSIGN_OR_RETURN(auto entries, fs.list_dir(dir));
  if (entries.size() > packaging::kMaxStickFolderEntries) {
    return Status::FailedPrecondition(
        dir + " holds " + std::to_string(entries.size()) +
        " entries, more than a pack folder ever has: point import at the outpost-pack folder "
        "an export wrote");
  }
  std::vector<std::string> out;
  for (const auto& e : entries) {
    if (!packaging::is_stick_index_name(e.name)) continue;
    std::string path = join_path(dir, e.name);
    if (e.type != FileType::kRegular) {
      return Status::FailedPrecondition("refusing " + path +
                                        ": not a regular file (a symlink or device on a stick "
                                        "is never written by an export)");
    }
    out.push_back(path);
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> find_stick_indexes(const std::string& location, FileSystem& fs) {
  std::string path = location;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto st = fs.lstat(path);
  if (!st.ok()) return st.error().With("opening the pack at " + location);
  if (st->type == FileType::kRegular && packaging::is_stick_index_name(base_of(path))) {
    return std::vector<std::string>{path};
  }
  if (st->type != FileType::kDirectory) {
    return Status::NotFound("no outpost pack at " + location +
                            ": give the stick's folder, its outpost-pack folder or an "
                            "index-*.json file");
  }
  std::string sub = join_path(path, std::string(packaging::kStickFolder));
  auto sst = fs.lstat(sub);
  if (sst.ok() && sst->type == FileType::kDirectory) path = sub;
  OUTPOST_ASSIGN_OR_RETURN(auto found, indexes_in(path, fs));
  if (found.empty()) {
    bool volumes = false;
    auto entries = fs.list_dir(path);
    if (entries.ok()) {
      for (const auto& e : *entries) volumes = volumes || packaging::is_volume_name(e.name);
    }
    if (volumes) {
      return Status::Corruption("the pack at " + location +
                                " is incomplete: it has volumes but no index (the export did "
                                "not finish, or the stick was pulled): export it again");
    }
    return Status::NotFound("no outpost pack at " + location +
                            " (no outpost-pack folder, no index-*.json): check the path");
  }
  return found;
}

bool looks_like_stick(const std::string& location) {
  auto found = find_stick_indexes(location);
  return found.ok() || found.error().IsCorruption();
}

Result<std::unique_ptr<PackSource>> PackSource::open_location(const std::string& location,
                                                              FileSystem& fs) {
  OUTPOST_ASSIGN_OR_RETURN(auto found, find_stick_indexes(location, fs));
  if (found.size() > 1) {
    std::string names;
    for (const auto& f : found) names += " " + base_of(f);
    return Status::InvalidArgument("the pack at " + location +
                                   " holds several repositories; name one index file:" + names);
  }
  return open(found.front(), fs);
}

Result<std::unique_ptr<PackSource>> PackSource::open(const std::string& index_path,
                                                     FileSystem& fs) {
  std::unique_ptr<PackSource> s(new PackSource(fs, index_path));
  s->dir_ = dir_of(index_path);
  auto bytes = fs.read_file(index_path, packaging::kMaxStickIndexBytes);
  if (!bytes.ok()) {
    if (bytes.error().IsResourceExhausted()) {
      return Status::Corruption("the pack index " + index_path + " is larger than 8 MB: damaged");
    }
    return bytes.error().With("reading the pack index");
  }
  auto index = packaging::StickIndex::parse({bytes->data(), bytes->size()});
  if (!index.ok()) return index.error().With(index_path);
  s->index_ = std::move(*index);
  if (s->index_.volumes.empty()) {
    return Status::Corruption("the pack index " + index_path + " lists no volume: export again");
  }
  OUTPOST_RETURN_IF_ERROR(s->scan());
  return s;
}

Status PackSource::scan() {
  const std::size_t n = index_.volumes.size();
  for (std::size_t v = 0; v < n; ++v) {
    const auto& vol = index_.volumes[v];
    std::string path = join_path(dir_, vol.name);
    volume_paths_.push_back(path);
    std::string label =
        "volume " + std::to_string(v + 1) + " of " + std::to_string(n) + " (" + vol.name + ")";
    auto st = fs_.lstat(path);
    if (!st.ok()) {
      if (!st.error().IsNotFound()) return st.error().With(label);
      problems_.push_back(label + " is missing: what it holds was not imported");
      continue;
    }
    if (st->type != FileType::kRegular) {
      problems_.push_back(label + " is not a regular file (a symlink or device): not read");
      continue;
    }
    packaging::PackReaderOptions opt;
    opt.verify_chunks = false;  // the sync checks every chunk it takes against its id
    opt.max_chunk = kMaxChunk;
    opt.fs = &fs_;
    auto reader = packaging::PackReader::open_file(path, opt);
    if (!reader.ok()) return reader.error().With(label);
    std::size_t records = 0;
    for (;;) {
      auto rec = (*reader)->next();
      if (!rec.ok()) {
        // A stick pulled or failing is not damage: stop, so the import is retried whole.
        if (rec.error().code() == Code::kUnavailable) return rec.error().With(label);
        problems_.push_back(label + ": " + rec.error().message() + "; " + std::to_string(records) +
                            " records before the damage are used");
        break;
      }
      if (!rec->has_value()) {
        if (!crypto::digest_equal((*reader)->pack_id(), vol.id)) {
          problems_.push_back(label + " is not the volume its name says (its checksum is " +
                              crypto::hex((*reader)->pack_id()) + "); its records are used");
        }
        break;
      }
      ++records;
      const packaging::RecordInfo& info = (**rec).info;
      Loc loc{v, info.offset, info.stored_length, info.id};
      if (info.type == packaging::RecordType::kChunk) {
        chunks_.push_back(loc);
      } else if (!info.name.empty()) {
        files_.emplace(info.name, loc);
      }
    }
  }
  // By id; of equal ids the first met (volume order, then offset) is the one read.
  std::stable_sort(chunks_.begin(), chunks_.end(),
                   [](const Loc& a, const Loc& b) { return a.id < b.id; });
  chunks_.erase(std::unique(chunks_.begin(), chunks_.end(),
                            [](const Loc& a, const Loc& b) { return a.id == b.id; }),
                chunks_.end());
  chunks_.shrink_to_fit();
  return Status::Ok();
}

const PackSource::Loc* PackSource::find_chunk(const crypto::Digest& id) const {
  auto it = std::lower_bound(chunks_.begin(), chunks_.end(), id,
                             [](const Loc& l, const crypto::Digest& d) { return l.id < d; });
  if (it == chunks_.end() || it->id != id) return nullptr;
  return &*it;
}

Status PackSource::count(std::uint64_t n) {
  ++stats_.requests;
  stats_.wire_bytes_in += n;
  stats_.body_bytes += n;
  return guard_ ? guard_(stats_) : Status::Ok();
}

Result<Bytes> PackSource::read_loc(const Loc& loc) {
  if (readers_.size() < volume_paths_.size()) readers_.resize(volume_paths_.size());
  std::unique_ptr<FileReader>& reader = readers_[loc.volume];
  if (!reader) {
    OUTPOST_ASSIGN_OR_RETURN(reader, fs_.open_reader(volume_paths_[loc.volume]));
  }
  Bytes out(loc.length);
  Status s = reader->read_at(loc.offset, std::span<std::uint8_t>(out.data(), out.size()));
  if (!s.ok()) {
    reader.reset();
    return s;
  }
  return out;
}

Result<Bytes> PackSource::read_file(const std::string& path, std::uint64_t max_length) {
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound(path + " is not in the " + describe());
  if (it->second.length > max_length) {
    return Status::Corruption(path + " in the " + describe() + " is longer than the " +
                              std::to_string(max_length) + " bytes expected: damaged or tampered");
  }
  OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_loc(it->second));
  // The stick may have changed since it was scanned.
  if (!crypto::digest_equal(crypto::blake2b({b.data(), b.size()}), it->second.id)) {
    return Status::Corruption(path + " in the " + describe() + " changed since it was read");
  }
  OUTPOST_RETURN_IF_ERROR(count(b.size()));
  return b;
}

Result<Bytes> PackSource::chunk_frame(const crypto::Digest& id) {
  const Loc* loc = find_chunk(id);
  if (loc == nullptr)
    return Status::NotFound("chunk " + crypto::hex(id) + " is not in the " + describe());
  OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_loc(*loc));
  OUTPOST_RETURN_IF_ERROR(count(b.size()));
  return b;
}

Status PackSource::map_indexes() {
  if (mapped_) return Status::Ok();
  mapped_ = true;
  for (const auto& [name, loc] : files_) {
    if (name.size() < 6 || name.compare(name.size() - 6, 6, ".index") != 0) continue;
    auto bytes = read_loc(loc);
    if (!bytes.ok()) {
      if (bytes.error().code() == Code::kUnavailable) return bytes.error();
      continue;
    }
    auto index = packaging::ChunkIndex::parse({bytes->data(), bytes->size()}, kMaxChunk);
    if (!index.ok()) continue;  // the sync reads it again and reports it against its hash
    for (const auto& e : index->chunks) {
      layout_.emplace(std::make_pair(index->packs[e.pack], e.offset),
                      std::make_pair(e.id, std::uint64_t{e.stored_length}));
    }
  }
  return Status::Ok();
}

Result<std::vector<Bytes>> PackSource::read_ranges(const std::string& path,
                                                   const std::vector<ByteRange>& ranges) {
  const std::string prefix = std::string(packaging::kPacksDir) + "/";
  crypto::Digest pack{};
  if (path.rfind(prefix, 0) != 0 || path.size() != prefix.size() + 69 ||
      !crypto::parse_digest(std::string_view(path).substr(prefix.size(), 64), pack)) {
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound(path + " is not in the " + describe());
    OUTPOST_ASSIGN_OR_RETURN(Bytes whole, read_file(path, it->second.length));
    std::vector<Bytes> out;
    for (const auto& r : ranges) {
      if (r.offset > whole.size() || r.length > whole.size() - r.offset) {
        return Status::Corruption(path + " in the " + describe() + " is shorter than asked");
      }
      auto at = whole.begin() + static_cast<std::ptrdiff_t>(r.offset);
      out.emplace_back(at, at + static_cast<std::ptrdiff_t>(r.length));
    }
    return out;
  }
  OUTPOST_RETURN_IF_ERROR(map_indexes());
  std::vector<Bytes> out;
  for (const auto& r : ranges) {
    if (r.length > (64u << 20)) return Status::InvalidArgument("range too large");
    Bytes buf(r.length, 0);
    bool first_found = false;
    for (auto it = layout_.lower_bound({pack, r.offset});
         it != layout_.end() && it->first.first == pack && it->first.second < r.offset + r.length;
         ++it) {
      const auto& [id, stored] = it->second;
      std::uint64_t at = it->first.second - r.offset;
      const Loc* c = find_chunk(id);
      if (c == nullptr || c->length != stored || at + stored > r.length) continue;
      OUTPOST_ASSIGN_OR_RETURN(Bytes frame, read_loc(*c));
      std::memcpy(buf.data() + at, frame.data(), frame.size());
      if (at == 0) first_found = true;
    }
    if (!first_found) {
      auto it = layout_.find({pack, r.offset});
      std::string what = it == layout_.end() ? "the chunk at byte " + std::to_string(r.offset)
                                             : "chunk " + crypto::hex(it->second.first);
      return Status::NotFound("the " + describe() + " does not carry " + what + " of " + path +
                              ": it is missing from this export");
    }
    OUTPOST_RETURN_IF_ERROR(count(r.length));
    out.push_back(std::move(buf));
  }
  return out;
}

}  // namespace outpost::sync

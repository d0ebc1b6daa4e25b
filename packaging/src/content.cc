#include "outpost/packaging/content.h"

#include <algorithm>
#include <utility>

namespace outpost::packaging {

namespace {
constexpr std::string_view kContentMagic = kContentStreamMagic;
}

ContentHasher::ContentHasher() { hasher_.update(as_bytes(kContentMagic)); }

Status ContentHasher::check_complete() const {
  if (in_file_ && received_ != declared_) {
    return Status::Corruption("file '" + path_ + "' has " + std::to_string(received_) +
                              " bytes, declared " + std::to_string(declared_));
  }
  return Status::Ok();
}

Status ContentHasher::add_file(std::string_view path, std::uint32_t mode, std::uint64_t size) {
  if (finished_) return Status::FailedPrecondition("content hasher used after finish()");
  OUTPOST_RETURN_IF_ERROR(check_complete());
  Bytes head;
  head.reserve(path.size() + 20);
  put_u64le(head, path.size());
  head.insert(head.end(), path.begin(), path.end());
  put_u32le(head, mode);
  put_u64le(head, size);
  hasher_.update(head);
  path_ = std::string(path);
  declared_ = size;
  received_ = 0;
  in_file_ = true;
  ++files_;
  total_ += size;
  return Status::Ok();
}

Status ContentHasher::update(ByteView bytes) {
  if (finished_) return Status::FailedPrecondition("content hasher used after finish()");
  if (bytes.empty()) return Status::Ok();
  if (!in_file_) return Status::Corruption("content bytes given before any file");
  if (bytes.size() > declared_ - received_) {
    return Status::Corruption("file '" + path_ + "' has more bytes than its declared " +
                              std::to_string(declared_));
  }
  received_ += bytes.size();
  hasher_.update(bytes);
  return Status::Ok();
}

Result<crypto::Digest> ContentHasher::finish() {
  if (finished_) return Status::FailedPrecondition("content hasher used after finish()");
  OUTPOST_RETURN_IF_ERROR(check_complete());
  finished_ = true;
  return hasher_.finish();
}

// ---- content stream --------------------------------------------------------------------------

std::uint64_t content_stream_size(const Manifest& manifest) {
  std::uint64_t n = kContentMagic.size();
  for (const FileEntry& f : manifest.files) n += 8 + f.path.size() + 4 + 8 + f.size;
  return n;
}

Bytes content_file_header(const FileEntry& file) {
  Bytes head;
  head.reserve(file.path.size() + 20);
  put_u64le(head, file.path.size());
  head.insert(head.end(), file.path.begin(), file.path.end());
  put_u32le(head, file.mode);
  put_u64le(head, file.size);
  return head;
}

Status write_content_stream(const Manifest& manifest, const ContentFileReader& read_file,
                            const ContentSink& sink) {
  OUTPOST_RETURN_IF_ERROR(sink(as_bytes(kContentMagic)));
  for (std::size_t i = 0; i < manifest.files.size(); ++i) {
    const FileEntry& f = manifest.files[i];
    OUTPOST_RETURN_IF_ERROR(sink(content_file_header(f)));
    std::uint64_t given = 0;
    OUTPOST_RETURN_IF_ERROR(read_file(i, f, [&](ByteView bytes) -> Status {
      if (bytes.size() > f.size - given) {
        return Status::Corruption("file '" + f.path + "' of " + manifest.bundle +
                                  " has more bytes than its declared " + std::to_string(f.size));
      }
      given += bytes.size();
      return sink(bytes);
    }));
    if (given != f.size) {
      return Status::Corruption("file '" + f.path + "' of " + manifest.bundle + " has " +
                                std::to_string(given) + " bytes, declared " +
                                std::to_string(f.size));
    }
  }
  return Status::Ok();
}

ContentSplitter::ContentSplitter(const Manifest& manifest, OnBytes on_bytes)
    : manifest_(manifest), on_bytes_(std::move(on_bytes)) {
  header_.assign(kContentMagic.begin(), kContentMagic.end());
}

Status ContentSplitter::fail(Status s) {
  error_ = s;
  return s;
}

// Called when the magic or a file ends: prepares the next file's header, or marks the end.
Status ContentSplitter::start_header() {
  if (!magic_) ++file_;
  magic_ = false;
  if (file_ >= manifest_.files.size()) {
    done_ = true;
    header_.clear();
    return Status::Ok();
  }
  header_ = content_file_header(manifest_.files[file_]);
  header_pos_ = 0;
  in_header_ = true;
  return Status::Ok();
}

Status ContentSplitter::update(ByteView bytes) {
  if (!error_.ok()) return error_;
  const std::string who = "content stream of " + manifest_.bundle;
  while (!bytes.empty()) {
    if (done_) {
      return fail(Status::Corruption(who + ": " + std::to_string(bytes.size()) +
                                     " bytes after the last file"));
    }
    if (in_header_) {
      const std::size_t n = std::min(bytes.size(), header_.size() - header_pos_);
      if (!std::equal(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n),
                      header_.begin() + static_cast<std::ptrdiff_t>(header_pos_))) {
        if (magic_) return fail(Status::Corruption(who + ": wrong magic"));
        return fail(Status::Corruption(who + ": the header of file " + std::to_string(file_) +
                                       " does not match '" + manifest_.files[file_].path +
                                       "' (path, mode or size) of the manifest"));
      }
      header_pos_ += n;
      consumed_ += n;
      bytes = bytes.subspan(n);
      if (header_pos_ < header_.size()) continue;
      if (magic_) {
        OUTPOST_RETURN_IF_ERROR(start_header());
        continue;
      }
      in_header_ = false;
      file_offset_ = 0;
      if (Status s = on_bytes_(file_, manifest_.files[file_], 0, ByteView()); !s.ok()) {
        return fail(s);
      }
    } else {
      const FileEntry& f = manifest_.files[file_];
      const std::uint64_t left = f.size - file_offset_;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), left));
      if (n > 0) {
        if (Status s = on_bytes_(file_, f, file_offset_, bytes.first(n)); !s.ok()) return fail(s);
        file_offset_ += n;
        consumed_ += n;
        bytes = bytes.subspan(n);
      }
    }
    if (!in_header_ && file_offset_ == manifest_.files[file_].size) {
      OUTPOST_RETURN_IF_ERROR(start_header());
    }
  }
  return Status::Ok();
}

Status ContentSplitter::finish() {
  if (!error_.ok()) return error_;
  if (!done_) {
    return fail(Status::Corruption("content stream of " + manifest_.bundle + " ends after " +
                                   std::to_string(consumed_) + " of " +
                                   std::to_string(content_stream_size(manifest_)) + " bytes"));
  }
  return Status::Ok();
}

}  // namespace outpost::packaging

#include "outpost/packaging/content.h"

namespace outpost::packaging {

namespace {
constexpr std::string_view kContentMagic = "outpost-content-v1\n";
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

}  // namespace outpost::packaging

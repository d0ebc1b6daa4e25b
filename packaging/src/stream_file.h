// The publisher's temp copy of a version's content stream (docs/format-repository.md,
// "Content stream"): what patches are made from.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>

#include "io_util.h"
#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost::packaging::publish_detail {

// A content stream in an unlinked temp file, mapped read-only once complete: the publisher
// holds big streams without holding them in its heap (the kernel pages them in and out).
class StreamFile {
 public:
  static Result<std::unique_ptr<StreamFile>> create(const std::string& dir) {
    std::string tmpl = dir + "/.tmp-stream-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return detail::errno_status(errno, "creating a temp file in", dir);
    ::unlink(tmpl.c_str());  // nothing is left behind, even after a crash
    auto f = std::unique_ptr<StreamFile>(new StreamFile());
    f->fd_ = detail::Fd(fd);
    f->path_ = tmpl;
    return f;
  }
  ~StreamFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  StreamFile(const StreamFile&) = delete;
  StreamFile& operator=(const StreamFile&) = delete;

  Status append(ByteView bytes) {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    size_ += bytes.size();
    if (buffer_.size() >= (1u << 20)) return flush();
    return Status::Ok();
  }
  // Flushes and maps the file; view() is valid from then on.
  Status map() {
    OUTPOST_RETURN_IF_ERROR(flush());
    if (size_ == 0) return Status::Ok();
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_.get(), 0);
    if (p == MAP_FAILED) return detail::errno_status(errno, "mapping", path_);
    map_ = p;
    return Status::Ok();
  }
  // Reads [offset, offset + out.size()) of what was appended (after flush()).
  Status read(std::uint64_t offset, Bytes& out) { return read(offset, std::span(out)); }
  Status read(std::uint64_t offset, std::span<std::uint8_t> out) {
    OUTPOST_RETURN_IF_ERROR(flush());
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done,
                                static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return detail::errno_status(errno, "reading", path_);
      if (n == 0) return Status::Internal("temp stream " + path_ + " is shorter than written");
      done += static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }
  ByteView view() const {
    return map_ == nullptr ? ByteView() : ByteView(static_cast<const std::uint8_t*>(map_), size_);
  }
  std::uint64_t size() const { return size_; }

 private:
  StreamFile() = default;
  Status flush() {
    Status s = detail::write_all(fd_.get(), buffer_, path_);
    buffer_.clear();
    return s;
  }
  detail::Fd fd_;
  std::string path_;
  Bytes buffer_;
  std::uint64_t size_ = 0;
  void* map_ = nullptr;
};

}  // namespace outpost::packaging::publish_detail

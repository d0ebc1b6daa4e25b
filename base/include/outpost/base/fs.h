// Files the way outpost writes them: whole files through temp + fsync + rename, so a reader
// (or a node after a power cut) sees the old file or the new one, never half of either.
// The FileSystem interface exists so tests can inject ENOSPC, torn writes and pulled sticks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"

namespace outpost {

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Reads a whole file. kNotFound when missing; kResourceExhausted when larger than max_bytes.
  virtual Result<Bytes> read_file(const std::string& path, std::uint64_t max_bytes) = 0;
  // Reads [offset, offset+length) of a file; kCorruption when the file is shorter.
  virtual Result<Bytes> read_range(const std::string& path, std::uint64_t offset,
                                   std::uint64_t length) = 0;
  // Writes path atomically: temp file in the same directory, fsync, rename, fsync directory.
  // ENOSPC maps to kResourceExhausted; the old file, if any, is untouched on error.
  virtual Status write_file_atomic(const std::string& path, ByteView data, int mode = 0644) = 0;
  virtual Status make_dirs(const std::string& path) = 0;
  virtual bool exists(const std::string& path) = 0;
};

// The real file system (POSIX). A process-wide instance; stateless and thread-safe.
FileSystem& real_fs();

// Helpers on the real file system.
std::string join_path(const std::string& a, const std::string& b);
std::string errno_text(int err);

}  // namespace outpost

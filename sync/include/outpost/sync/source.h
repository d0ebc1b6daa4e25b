// Where a node reads a repository from. Every source is untrusted: whatever it returns is
// checked against the publisher's signatures and content hashes by the caller before it
// counts. Two kinds exist: a local path (a disk, a mounted share, a USB stick) and an HTTP(S)
// mirror (outpost/sync/http.h).
// Thread-safety: a Source is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/status.h"
#include "outpost/crypto/tuf.h"

namespace outpost::sync {

struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

class Source : public crypto::tuf::MetadataSource {
 public:
  // TUF metadata file under metadata/ ("timestamp.json", "3.snapshot.json").
  Result<Bytes> fetch(const std::string& filename, std::uint64_t max_length) override {
    return read_file("metadata/" + filename, max_length);
  }
  // A whole repository file by its path relative to the repository root. Reads at most
  // max_length bytes: a longer file is kCorruption. kNotFound when absent.
  virtual Result<Bytes> read_file(const std::string& path, std::uint64_t max_length) = 0;
  // The given byte ranges of one repository file, in the order asked. A file shorter than
  // a range is kCorruption.
  virtual Result<std::vector<Bytes>> read_ranges(const std::string& path,
                                                 const std::vector<ByteRange>& ranges) = 0;
  // For messages: "repository at /srv/repo".
  virtual std::string describe() const = 0;
  // Bytes read from the source so far (what a metered link would be billed).
  virtual std::uint64_t bytes_read() const = 0;
};

// Opens a repository given as a local directory path (or file:// URL), or as an http:// or
// https:// URL (an HttpSource with default HttpOptions; no request is made here). kNotFound
// when a local path does not look like a repository (no metadata/ folder); kInvalidArgument
// for a malformed URL.
Result<std::unique_ptr<Source>> open_source(const std::string& location);

}  // namespace outpost::sync

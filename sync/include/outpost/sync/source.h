// Where a node reads a repository from. Every source is untrusted: whatever it returns is
// checked against the publisher's signatures and content hashes by the caller before it
// counts. A local path (a disk, a mounted share, a USB stick) and an HTTP(S) mirror
// (outpost/sync/http.h) implement it; callers never ask which one they hold: resumable
// reads, validators, statistics and what was learned about a server go through this
// interface, and a budget is one wrapper (MeteredSource) around any source.
// Thread-safety: a Source is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/tuf.h"

namespace outpost::sync {

struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// What a source has moved so far. For a link: HTTP requests (retries included) and the bytes
// on the wire both ways, headers included. For a local path: files read and their bytes.
struct TransferStats {
  std::uint64_t requests = 0;
  std::uint64_t wire_bytes_in = 0;   // response headers + bodies (a path: bytes read)
  std::uint64_t wire_bytes_out = 0;  // request lines + headers (a path: 0)
  std::uint64_t body_bytes = 0;      // response bodies (error pages and discarded bytes too)
  std::uint64_t total() const { return wire_bytes_in + wire_bytes_out; }
};

// What a server is known to handle, remembered between runs by the node (it persists the
// Json form in its store, keyed by Source::origin()).
struct ServerLimits {
  bool multirange = true;         // multipart/byteranges answered correctly
  bool ranges = true;             // Range honoured at all
  std::uint32_t max_ranges = 64;  // ranges per request known to work
  // {"multirange":true,"ranges":true,"max_ranges":64}
  Json to_json() const;
  // Missing or ill-typed fields keep their defaults; max_ranges is clamped to 1..1024.
  static ServerLimits from_json(const Json& json);
};

// Called as bytes arrive with the source's statistics so far; an error Status aborts the
// transfer under way and is returned by the call that was reading (a data budget used up, a
// sync cancelled).
using TransferGuard = std::function<Status(const TransferStats&)>;

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
  // Reads one file from `offset` to its end (resuming a partial transfer: the caller passes
  // what it already holds), calling on_piece with each piece as it arrives so the caller can
  // keep it; an error from on_piece aborts and is returned. Bounded by max_total (the length
  // declared in signed metadata): more bytes is kCorruption. When the source cannot resume
  // (the file changed, a server ignored Range) it restarts from byte 0 and sets *restarted
  // before passing the first piece. offset == max_total reads nothing; offset > max_total is
  // kInvalidArgument. The default reads the rest with read_ranges in one piece.
  virtual Status read_tail(const std::string& path, std::uint64_t offset, std::uint64_t max_total,
                           const std::function<Status(ByteView piece)>& on_piece,
                           bool* restarted = nullptr);
  // The start of a file whose length nothing signed declares (a library file, read in two
  // parts: docs/sync.md, "A long absence"): at least its first min(length, size) bytes (the
  // default reads the whole file) and the file's size. kNotFound when absent; kCorruption
  // when the file is longer than max_size.
  struct Prefix {
    Bytes bytes;
    std::uint64_t size = 0;
  };
  virtual Result<Prefix> read_prefix(const std::string& path, std::uint64_t /*length*/,
                                     std::uint64_t max_size) {
    OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_file(path, max_size));
    const std::uint64_t size = b.size();
    return Prefix{std::move(b), size};
  }
  // Conditional read: nullopt when the file is unchanged since the validator set for it
  // (set_validator, or the one this source learned on its last read of it). Sources without
  // validators (the default) always read the file.
  virtual Result<std::optional<Bytes>> read_file_if_changed(const std::string& path,
                                                            std::uint64_t max_length) {
    OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_file(path, max_length));
    return std::optional<Bytes>(std::move(b));
  }
  virtual void set_validator(const std::string& /*path*/, std::string /*validator*/) {}
  // "" when none is known.
  virtual std::string validator(const std::string& /*path*/) const { return {}; }

  // For messages: "repository at /srv/repo", "mirror at https://example.org/repo".
  virtual std::string describe() const = 0;
  // What this source moved so far.
  virtual TransferStats stats() const = 0;
  // Whether its bytes cross a paid link (and count against a data budget): HTTP yes, a local
  // path or a stick no.
  virtual bool metered() const = 0;
  // The key under which what was learned about this server is remembered
  // ("http://127.0.0.1:8080"); "" for a source with nothing to learn.
  virtual std::string origin() const { return {}; }
  virtual ServerLimits limits() const { return {}; }
  virtual void set_limits(ServerLimits /*limits*/) {}
  // Whether limits() learned something the node should save.
  virtual bool limits_changed() const { return false; }
  // Installs a guard called as bytes arrive (replacing any earlier one).
  virtual void set_guard(TransferGuard guard) = 0;
  // Whether the source is another outpost node (docs/daemon.md, "Peer serving"): one of its
  // responses carried the X-Outpost-Peer header. Such a source also answers
  // read_file("pieces?chunks=HEX,...") and read_file("pieces?bundle=NAME&from=N&to=M") with a
  // pack (docs/format-repository.md, "Pack"); everything in it is verified like any bytes.
  virtual bool peer() const { return false; }
};

// Wraps any source and holds it to a byte budget: once the bytes it moved (stats().total())
// pass `budget`, the transfer under way is aborted with kResourceExhausted. Unmetered sources
// pass through unchecked. It also keeps the guard of its caller (cancellation).
class MeteredSource final : public Source {
 public:
  // budget: bytes it may still move (UINT64_MAX: no limit). inner must outlive it.
  MeteredSource(Source& inner, std::uint64_t budget);
  ~MeteredSource() override { inner_.set_guard(nullptr); }
  MeteredSource(const MeteredSource&) = delete;
  MeteredSource& operator=(const MeteredSource&) = delete;
  Result<Bytes> read_file(const std::string& path, std::uint64_t max_length) override;
  Result<std::vector<Bytes>> read_ranges(const std::string& path,
                                         const std::vector<ByteRange>& ranges) override;
  Status read_tail(const std::string& path, std::uint64_t offset, std::uint64_t max_total,
                   const std::function<Status(ByteView piece)>& on_piece,
                   bool* restarted = nullptr) override;
  Result<Prefix> read_prefix(const std::string& path, std::uint64_t length,
                             std::uint64_t max_size) override {
    return inner_.read_prefix(path, length, max_size);
  }
  Result<std::optional<Bytes>> read_file_if_changed(const std::string& path,
                                                    std::uint64_t max_length) override;
  void set_validator(const std::string& path, std::string validator) override;
  std::string validator(const std::string& path) const override;
  std::string describe() const override { return inner_.describe(); }
  TransferStats stats() const override { return inner_.stats(); }
  bool metered() const override { return inner_.metered(); }
  std::string origin() const override { return inner_.origin(); }
  ServerLimits limits() const override { return inner_.limits(); }
  void set_limits(ServerLimits limits) override { inner_.set_limits(limits); }
  bool limits_changed() const override { return inner_.limits_changed(); }
  bool peer() const override { return inner_.peer(); }
  void set_guard(TransferGuard guard) override;
  // Bytes still allowed (0 when used up).
  std::uint64_t left() const;

 private:
  Status check(const TransferStats& stats) const;
  Source& inner_;
  std::uint64_t budget_;
  std::uint64_t start_;  // inner_.stats().total() when wrapped
  TransferGuard outer_;
};

struct HttpOptions;

// Opens a repository given as a local directory path (or file:// URL), or as an http:// or
// https:// URL (an HttpSource with `http`; no request is made here). kNotFound when a local
// path does not look like a repository (no metadata/ folder); kInvalidArgument for a
// malformed URL or a scheme outpost does not speak (ftp://, ...).
Result<std::unique_ptr<Source>> open_source(const std::string& location);
Result<std::unique_ptr<Source>> open_source(const std::string& location, const HttpOptions& http);

}  // namespace outpost::sync

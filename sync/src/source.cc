#include "outpost/sync/source.h"

#include <sys/stat.h>

#include "outpost/base/fs.h"
#include "outpost/sync/http.h"
#include "outpost/sync/pack_source.h"

namespace outpost::sync {

namespace {

// A repository on a local disk or a mounted share. Paths come from signed metadata or from
// our own code, but they are still checked so a hostile name cannot leave the repository.
class PathSource final : public Source {
 public:
  explicit PathSource(std::string root) : root_(std::move(root)) {}

  Result<Bytes> read_file(const std::string& path, std::uint64_t max_length) override {
    OUTPOST_RETURN_IF_ERROR(check_path(path));
    std::string full = join_path(root_, path);
    auto data = real_fs().read_file(full, max_length);
    if (!data.ok()) {
      // Only a file that really is too long: out of file descriptors or memory is said as such.
      struct stat st {};
      if (data.error().IsResourceExhausted() && ::stat(full.c_str(), &st) == 0 &&
          static_cast<std::uint64_t>(st.st_size) > max_length) {
        // max_length is a signed length or, for files fetched before any length is
        // signed (timestamp.json, root), a fixed size limit: say neither in particular.
        return Status::Corruption(path + " in " + describe() + " is longer than the " +
                                  std::to_string(max_length) +
                                  " bytes expected (its signed length or size limit): damaged "
                                  "or tampered; try another mirror");
      }
      return data.error();
    }
    count(data->size());
    OUTPOST_RETURN_IF_ERROR(guard());
    return data;
  }

  Result<std::vector<Bytes>> read_ranges(const std::string& path,
                                         const std::vector<ByteRange>& ranges) override {
    OUTPOST_RETURN_IF_ERROR(check_path(path));
    std::string full = join_path(root_, path);
    std::vector<Bytes> out;
    out.reserve(ranges.size());
    for (const ByteRange& r : ranges) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes b, real_fs().read_range(full, r.offset, r.length));
      count(b.size());
      out.push_back(std::move(b));
      OUTPOST_RETURN_IF_ERROR(guard());
    }
    return out;
  }

  Result<Prefix> read_prefix(const std::string& path, std::uint64_t length,
                             std::uint64_t max_size) override {
    OUTPOST_RETURN_IF_ERROR(check_path(path));
    const std::string full = join_path(root_, path);
    struct stat st {};
    const bool known = ::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    const auto size = known ? static_cast<std::uint64_t>(st.st_size) : 0;
    if (!known || size > max_size || length >= size) {  // read_file says why, if it fails
      OUTPOST_ASSIGN_OR_RETURN(Bytes b, read_file(path, max_size));
      const std::uint64_t got = b.size();
      return Prefix{std::move(b), got};
    }
    OUTPOST_ASSIGN_OR_RETURN(Bytes b, real_fs().read_range(full, 0, length));
    count(b.size());
    OUTPOST_RETURN_IF_ERROR(guard());
    return Prefix{std::move(b), size};
  }

  std::string describe() const override { return "repository at " + root_; }
  TransferStats stats() const override { return stats_; }
  bool metered() const override { return false; }
  void set_guard(TransferGuard guard) override { guard_ = std::move(guard); }

 private:
  Status check_path(const std::string& path) const {
    if (path.empty() || path.front() == '/' || path.find("..") != std::string::npos ||
        path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) {
      return Status::Corruption("refusing repository path '" + path + "' from " + describe());
    }
    return Status::Ok();
  }

  void count(std::uint64_t n) {
    ++stats_.requests;  // one read of one file
    stats_.wire_bytes_in += n;
    stats_.body_bytes += n;
  }
  Status guard() const { return guard_ ? guard_(stats_) : Status::Ok(); }

  std::string root_;
  TransferStats stats_;
  TransferGuard guard_;
};

}  // namespace

Status Source::read_tail(const std::string& path, std::uint64_t offset, std::uint64_t max_total,
                         const std::function<Status(ByteView piece)>& on_piece, bool* restarted) {
  if (restarted != nullptr) *restarted = false;
  if (offset > max_total) {
    return Status::InvalidArgument("read_tail of " + path + " from " + std::to_string(offset) +
                                   ", past its declared length " + std::to_string(max_total));
  }
  if (offset == max_total) return Status::Ok();
  OUTPOST_ASSIGN_OR_RETURN(auto pieces, read_ranges(path, {ByteRange{offset, max_total - offset}}));
  for (const Bytes& piece : pieces) OUTPOST_RETURN_IF_ERROR(on_piece({piece.data(), piece.size()}));
  return Status::Ok();
}

MeteredSource::MeteredSource(Source& inner, std::uint64_t budget)
    : inner_(inner), budget_(budget), start_(inner.stats().total()) {
  set_guard(nullptr);
}

Status MeteredSource::check(const TransferStats& stats) const {
  if (inner_.metered() && budget_ != UINT64_MAX && stats.total() - start_ > budget_) {
    return Status::ResourceExhausted(
        "the data budget is used up: the rest waits for the next day or month, or for a larger "
        "budget");
  }
  return outer_ ? outer_(stats) : Status::Ok();
}

void MeteredSource::set_guard(TransferGuard guard) {
  outer_ = std::move(guard);
  inner_.set_guard([this](const TransferStats& stats) { return check(stats); });
}

std::uint64_t MeteredSource::left() const {
  if (!inner_.metered() || budget_ == UINT64_MAX) return UINT64_MAX;
  std::uint64_t spent = inner_.stats().total() - start_;
  return spent >= budget_ ? 0 : budget_ - spent;
}

// Every call checks the budget before it starts too: a source whose transfer is over budget
// must not start another request.
Result<Bytes> MeteredSource::read_file(const std::string& path, std::uint64_t max_length) {
  OUTPOST_RETURN_IF_ERROR(check(inner_.stats()));
  return inner_.read_file(path, max_length);
}

Result<std::vector<Bytes>> MeteredSource::read_ranges(const std::string& path,
                                                      const std::vector<ByteRange>& ranges) {
  OUTPOST_RETURN_IF_ERROR(check(inner_.stats()));
  return inner_.read_ranges(path, ranges);
}

Status MeteredSource::read_tail(const std::string& path, std::uint64_t offset,
                                std::uint64_t max_total,
                                const std::function<Status(ByteView piece)>& on_piece,
                                bool* restarted) {
  OUTPOST_RETURN_IF_ERROR(check(inner_.stats()));
  return inner_.read_tail(path, offset, max_total, on_piece, restarted);
}

Result<std::optional<Bytes>> MeteredSource::read_file_if_changed(const std::string& path,
                                                                 std::uint64_t max_length) {
  OUTPOST_RETURN_IF_ERROR(check(inner_.stats()));
  return inner_.read_file_if_changed(path, max_length);
}

void MeteredSource::set_validator(const std::string& path, std::string validator) {
  inner_.set_validator(path, std::move(validator));
}

std::string MeteredSource::validator(const std::string& path) const {
  return inner_.validator(path);
}

Result<std::unique_ptr<Source>> open_source(const std::string& location) {
  return open_source(location, HttpOptions{});
}

Result<std::unique_ptr<Source>> open_source(const std::string& location, const HttpOptions& http) {
  std::string path = location;
  if (path.rfind("file://", 0) == 0) path = path.substr(7);
  if (path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0) {
    OUTPOST_ASSIGN_OR_RETURN(auto source, HttpSource::open(path, http));
    return std::unique_ptr<Source>(std::move(source));
  }
  if (std::size_t colon = path.find("://"); colon != std::string::npos) {
    return Status::InvalidArgument("'" + location + "': the scheme " + path.substr(0, colon) +
                                   ":// is not supported; use a local path, file://, http:// "
                                   "or https://");
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  struct stat st {};
  std::string meta = join_path(path, "metadata");
  if (::stat(meta.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    // A stick (or its outpost-pack folder) written by `outpost export`.
    if (looks_like_stick(path)) {
      OUTPOST_ASSIGN_OR_RETURN(auto pack, PackSource::open_location(path));
      return std::unique_ptr<Source>(std::move(pack));
    }
    return Status::NotFound("no outpost repository at " + location +
                            " (no metadata/ folder): check the path");
  }
  return std::unique_ptr<Source>(new PathSource(path));
}

}  // namespace outpost::sync

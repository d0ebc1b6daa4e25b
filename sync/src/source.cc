#include "outpost/sync/source.h"

#include <sys/stat.h>

#include "outpost/base/fs.h"
#include "outpost/sync/http.h"

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
      if (data.error().IsResourceExhausted()) {
        // max_length is a signed length or, for files fetched before any length is
        // signed (timestamp.json, root), a fixed size limit: say neither in particular.
        return Status::Corruption(path + " in " + describe() + " is longer than the " +
                                  std::to_string(max_length) +
                                  " bytes expected (its signed length or size limit): damaged "
                                  "or tampered; try another mirror");
      }
      return data.error();
    }
    bytes_read_ += data->size();
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
      bytes_read_ += b.size();
      out.push_back(std::move(b));
    }
    return out;
  }

  std::string describe() const override { return "repository at " + root_; }
  std::uint64_t bytes_read() const override { return bytes_read_; }

 private:
  Status check_path(const std::string& path) const {
    if (path.empty() || path.front() == '/' || path.find("..") != std::string::npos ||
        path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) {
      return Status::Corruption("refusing repository path '" + path + "' from " + describe());
    }
    return Status::Ok();
  }

  std::string root_;
  std::uint64_t bytes_read_ = 0;
};

}  // namespace

Result<std::unique_ptr<Source>> open_source(const std::string& location) {
  std::string path = location;
  if (path.rfind("file://", 0) == 0) path = path.substr(7);
  if (path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0) {
    OUTPOST_ASSIGN_OR_RETURN(auto http, HttpSource::open(path, HttpOptions{}));
    return std::unique_ptr<Source>(std::move(http));
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  struct stat st {};
  std::string meta = join_path(path, "metadata");
  if (::stat(meta.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::NotFound("no outpost repository at " + location +
                            " (no metadata/ folder): check the path");
  }
  return std::unique_ptr<Source>(new PathSource(path));
}

}  // namespace outpost::sync

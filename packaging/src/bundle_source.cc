#include "outpost/packaging/bundle_source.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "io_util.h"
#include "outpost/base/fs.h"
#include "outpost/packaging/manifest.h"

namespace outpost::packaging {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

Status walk(const std::string& root, const std::string& rel, std::vector<SourceFile>& out,
            int depth) {
  if (depth > 64) {
    return Status::InvalidArgument("folder " + join_path(root, rel) + " is nested too deeply");
  }
  const std::string here = rel.empty() ? root : root + "/" + rel;
  std::unique_ptr<DIR, DirCloser> d(::opendir(here.c_str()));
  if (!d) return detail::errno_status(errno, "listing folder", here);
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      if (errno != 0) return detail::errno_status(errno, "listing folder", here);
      break;
    }
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string child_rel = rel.empty() ? name : rel + "/" + name;
    const std::string child = root + "/" + child_rel;
    struct stat st {};
    if (::lstat(child.c_str(), &st) != 0) return detail::errno_status(errno, "reading", child);
    if (S_ISLNK(st.st_mode)) {
      return Status::InvalidArgument("'" + child +
                                     "' is a symbolic link: bundles hold regular files only; "
                                     "copy the file it points to instead");
    }
    if (S_ISDIR(st.st_mode)) {
      OUTPOST_RETURN_IF_ERROR(walk(root, child_rel, out, depth + 1));
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      return Status::InvalidArgument("'" + child +
                                     "' is not a regular file (device, FIFO or socket): remove it");
    }
    if (Status s = validate_file_path(child_rel); !s.ok()) {
      return Status::InvalidArgument("cannot publish '" + child + "': " + s.message());
    }
    if (out.size() >= kMaxBundleFiles) {
      return Status::InvalidArgument("folder " + root + " holds more than " +
                                     std::to_string(kMaxBundleFiles) + " files");
    }
    SourceFile f;
    f.path = child_rel;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.mode = (st.st_mode & 0111) != 0 ? kModeExecutable : kModeRegular;
    out.push_back(std::move(f));
  }
  return Status::Ok();
}

}  // namespace

std::string BundleSource::full_path(const SourceFile& file) const { return dir + "/" + file.path; }

Result<BundleSource> read_bundle_dir(const std::string& dir, const BundleOverrides& overrides) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return detail::errno_status(errno, "opening folder", dir);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(dir + " is not a folder");

  BundleSource src;
  src.dir = dir;
  while (src.dir.size() > 1 && src.dir.back() == '/') src.dir.pop_back();
  src.kind = "generic";

  OUTPOST_RETURN_IF_ERROR(walk(src.dir, "", src.files, 0));
  std::sort(src.files.begin(), src.files.end(),
            [](const SourceFile& a, const SourceFile& b) { return a.path < b.path; });
  for (const auto& f : src.files) src.total_size += f.size;

  const std::string bj_path = src.dir + "/" + kBundleJson;
  const bool has_bundle_json =
      std::any_of(src.files.begin(), src.files.end(),
                  [](const SourceFile& f) { return f.path == kBundleJson; });
  std::optional<std::string> name;
  if (has_bundle_json) {
    auto text = real_fs().read_file(bj_path, kMaxBundleJsonBytes);
    if (!text.ok()) return text.error().With("reading " + bj_path);
    auto parsed = parse_json(as_chars(*text));
    if (!parsed.ok()) return parsed.error().With(bj_path);
    Json j = std::move(parsed).value();
    if (!j.is_object()) return Status::InvalidArgument(bj_path + ": expected a JSON object");
    if (const Json* n = j.find("name")) {
      if (!n->is_string()) return Status::InvalidArgument(bj_path + ": \"name\" must be a string");
      name = n->as_string();
    }
    if (const Json* k = j.find("kind")) {
      if (!k->is_string()) return Status::InvalidArgument(bj_path + ": \"kind\" must be a string");
      src.kind = k->as_string();
    }
    if (const Json* t = j.find("title"); t != nullptr && !t->is_string()) {
      return Status::InvalidArgument(bj_path + ": \"title\" must be a string");
    }
    if (const Json* files = j.find("files")) {
      if (!files->is_object()) {
        return Status::InvalidArgument(bj_path + ": \"files\" must map roles to file paths");
      }
      for (const auto& [role, value] : files->as_object()) {
        const Json& path = value;  // clang 14 cannot capture a structured binding
        if (!path.is_string() ||
            !std::any_of(src.files.begin(), src.files.end(),
                         [&](const SourceFile& f) { return f.path == path.as_string(); })) {
          return Status::InvalidArgument(bj_path + ": \"files\"." + role +
                                         " does not name a file of the folder");
        }
      }
    }
    j.erase("name");
    j.erase("kind");
    j.erase("files");
    src.meta = std::move(j);
  }
  if (overrides.name) name = overrides.name;
  if (overrides.kind) src.kind = *overrides.kind;
  if (overrides.title) src.meta.set("title", *overrides.title);
  if (!name) {
    return Status::InvalidArgument("no bundle name for " + dir +
                                   ": give --bundle NAME or a \"name\" in bundle.json");
  }
  OUTPOST_RETURN_IF_ERROR(validate_bundle_name(*name));
  OUTPOST_RETURN_IF_ERROR(validate_kind(src.kind));
  src.name = *name;
  return src;
}

}  // namespace outpost::packaging

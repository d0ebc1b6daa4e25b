#include "outpost/packaging/have_file.h"

#include <cstring>

#include "outpost/crypto/hash.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/manifest.h"

namespace outpost::packaging {

namespace {

constexpr char kMagic[8] = {'O', 'U', 'T', 'H', 'A', 'V', 'E', '1'};
constexpr std::size_t kHead = sizeof kMagic + 4;
constexpr int kLevel = 19;

void put_string(Bytes& out, std::string_view s) {
  put_varint(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

Status damaged(const std::string& what) {
  return Status::Corruption("the have-file is damaged: " + what +
                            ": make a new one on the node with 'outpost have --out FILE'");
}

class Cursor {
 public:
  explicit Cursor(ByteView b) : b_(b) {}
  Result<std::uint64_t> varint() {
    auto v = get_varint(b_, &pos_);
    if (!v) return damaged(pos_ >= b_.size() ? "it ends early" : "a number is too long");
    return *v;
  }
  Result<std::string> string(std::size_t max) {
    OUTPOST_ASSIGN_OR_RETURN(std::uint64_t n, varint());
    if (n > max || n > b_.size() - pos_) return damaged("a name is too long");
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  ByteView b_;
  std::size_t pos_ = 0;
};

}  // namespace

Bytes HaveFile::encode() const {
  Bytes body;
  put_varint(body, static_cast<std::uint64_t>(created));
  put_varint(body, repos.size());
  for (const auto& r : repos) {
    put_string(body, r.id);
    put_varint(body, static_cast<std::uint64_t>(r.root));
    put_varint(body, static_cast<std::uint64_t>(r.timestamp));
    put_varint(body, static_cast<std::uint64_t>(r.snapshot));
    put_varint(body, r.bundles.size());
    std::string prev;
    for (const auto& [name, versions] : r.bundles) {
      std::size_t shared = 0;
      while (shared < prev.size() && shared < name.size() && prev[shared] == name[shared]) ++shared;
      put_varint(body, shared);
      put_string(body, std::string_view(name).substr(shared));
      put_varint(body, versions.size());
      std::uint64_t last = 0;
      for (std::uint64_t v : versions) {
        put_varint(body, v - last);
        last = v;
      }
      prev = name;
    }
  }
  Compressor c(kLevel);
  Bytes frame = c.compress({body.data(), body.size()}).value();
  Bytes out(kMagic, kMagic + sizeof kMagic);
  auto n = static_cast<std::uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), frame.begin(), frame.end());
  crypto::Digest sum = crypto::blake2b({out.data(), out.size()});
  out.insert(out.end(), sum.begin(), sum.end());
  return out;
}

Result<HaveFile> HaveFile::parse(ByteView bytes) {
  if (bytes.size() > kMaxHaveFileBytes) return damaged("it is larger than 4 MB");
  if (bytes.size() < kHead + 32 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return damaged("it is not an outpost have-file");
  }
  ByteView signed_part = bytes.subspan(0, bytes.size() - 32);
  crypto::Digest sum = crypto::blake2b(signed_part);
  crypto::Digest want{};
  std::memcpy(want.data(), bytes.data() + bytes.size() - 32, 32);
  if (!crypto::digest_equal(sum, want)) return damaged("its checksum does not match");
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<std::uint32_t>(bytes[sizeof kMagic + static_cast<std::size_t>(i)]) << (8 * i);
  if (n > kMaxHaveBodyBytes) return damaged("its body is too large");
  Decompressor d;
  auto body = d.decompress(signed_part.subspan(kHead), n, "have-file");
  if (!body.ok()) return damaged(body.error().message());
  Cursor c({body->data(), body->size()});
  HaveFile out;
  OUTPOST_ASSIGN_OR_RETURN(std::uint64_t created, c.varint());
  out.created = static_cast<std::int64_t>(created);
  OUTPOST_ASSIGN_OR_RETURN(std::uint64_t nrepos, c.varint());
  if (nrepos > 1024) return damaged("too many repositories");
  for (std::uint64_t i = 0; i < nrepos; ++i) {
    HaveRepo r;
    OUTPOST_ASSIGN_OR_RETURN(r.id, c.string(64));
    std::int64_t* fields[] = {&r.root, &r.timestamp, &r.snapshot};
    for (std::int64_t* f : fields) {
      OUTPOST_ASSIGN_OR_RETURN(std::uint64_t v, c.varint());
      if (v > static_cast<std::uint64_t>(INT64_MAX)) return damaged("a version is out of range");
      *f = static_cast<std::int64_t>(v);
    }
    OUTPOST_ASSIGN_OR_RETURN(std::uint64_t nb, c.varint());
    if (nb > n) return damaged("too many bundles");
    std::string prev;
    for (std::uint64_t k = 0; k < nb; ++k) {
      OUTPOST_ASSIGN_OR_RETURN(std::uint64_t shared, c.varint());
      if (shared > prev.size()) return damaged("a bundle name refers past the previous one");
      OUTPOST_ASSIGN_OR_RETURN(std::string rest, c.string(1024));
      std::string name = prev.substr(0, shared) + rest;
      if (!validate_bundle_name(name).ok()) return damaged("an invalid bundle name");
      if (!prev.empty() && name <= prev) return damaged("bundle names out of order");
      OUTPOST_ASSIGN_OR_RETURN(std::uint64_t nv, c.varint());
      if (nv > kMaxHaveVersions) return damaged("too many versions of " + name);
      std::vector<std::uint64_t> versions;
      std::uint64_t last = 0;
      for (std::uint64_t v = 0; v < nv; ++v) {
        OUTPOST_ASSIGN_OR_RETURN(std::uint64_t step, c.varint());
        if (step == 0 || step > UINT64_MAX - last)
          return damaged("versions of " + name + " out of order");
        last += step;
        versions.push_back(last);
      }
      r.bundles.emplace(name, std::move(versions));
      prev = std::move(name);
    }
    out.repos.push_back(std::move(r));
  }
  if (!c.done()) return damaged("bytes after the end");
  return out;
}

}  // namespace outpost::packaging

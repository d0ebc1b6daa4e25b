// Our own delta engine: bsdiff-style approximate matching over a suffix array of the old slice,
// with the output split into separately compressed streams.
//
// The segment is described by a list of controls (add, copy, seek), as in bsdiff: `add` bytes
// are old bytes at the current old position plus a byte-wise difference (new - old mod 256),
// `copy` bytes are new bytes taken as they are, then the old position moves by `seek`.
// Differences are mostly zero (numbers that changed in a digit or two), so they are coded with
// an adaptive binary range coder whose contexts come from the old bytes (DiffModel): that beats
// zstd or bzip2 on the difference block by 20-40 %.
//
// Payload: varint(controls), varint(old position to start at), then 3 streams (controls as
// varints; range-coded differences; new bytes), each u8(mode) varint(raw_len) varint(stored_len)
// bytes, mode 0 stored, 1 zstd, 2 zstd with the old slice as prefix.
#include <divsufsort.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "delta_internal.h"

namespace outpost::packaging::delta_detail {
namespace {

constexpr std::uint8_t kStored = 0;
constexpr std::uint8_t kZstd = 1;
constexpr std::uint8_t kZstdPrefix = 2;

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

// --- adaptive binary range coder (LZMA-style) for the differences ---

constexpr int kProbBits = 16;
constexpr std::uint32_t kProbOne = 1u << kProbBits;
constexpr int kMoveBits = 4;  // fast adaptation: changes come in clusters
constexpr std::uint32_t kTop = 1u << 24;

class RangeEncoder {
 public:
  explicit RangeEncoder(Bytes& out) : out_(out) {}
  void bit(std::uint16_t& p, int b) {
    const std::uint32_t bound = (range_ >> kProbBits) * p;
    if (b == 0) {
      range_ = bound;
      p = static_cast<std::uint16_t>(p + ((kProbOne - p) >> kMoveBits));
    } else {
      low_ += bound;
      range_ -= bound;
      p = static_cast<std::uint16_t>(p - (p >> kMoveBits));
    }
    while (range_ < kTop) {
      range_ <<= 8;
      shift_low();
    }
  }
  void finish() {
    for (int i = 0; i < 5; ++i) shift_low();
  }

 private:
  void shift_low() {
    if (low_ < 0xFF000000ull || low_ > 0xFFFFFFFFull) {
      const auto carry = static_cast<std::uint8_t>(low_ >> 32);
      if (have_cache_) out_.push_back(static_cast<std::uint8_t>(cache_ + carry));
      for (; pending_ > 0; --pending_) out_.push_back(static_cast<std::uint8_t>(0xFF + carry));
      cache_ = static_cast<std::uint8_t>(low_ >> 24);
      have_cache_ = true;
    } else {
      ++pending_;
    }
    low_ = (low_ & 0x00FFFFFFull) << 8;
  }
  Bytes& out_;
  std::uint64_t low_ = 0;
  std::uint32_t range_ = 0xFFFFFFFFu;
  std::uint8_t cache_ = 0;
  bool have_cache_ = false;
  std::uint64_t pending_ = 0;
};

// Reads past the end of its input as zero bytes: a damaged stream decodes to wrong bytes of
// the right count (the content hash catches them), never to a read out of bounds.
class RangeDecoder {
 public:
  explicit RangeDecoder(ByteView in) : in_(in) {
    for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | next();
  }
  int bit(std::uint16_t& p) {
    const std::uint32_t bound = (range_ >> kProbBits) * p;
    int b;
    if (code_ < bound) {
      range_ = bound;
      p = static_cast<std::uint16_t>(p + ((kProbOne - p) >> kMoveBits));
      b = 0;
    } else {
      code_ -= bound;
      range_ -= bound;
      p = static_cast<std::uint16_t>(p - (p >> kMoveBits));
      b = 1;
    }
    while (range_ < kTop) {
      range_ <<= 8;
      code_ = (code_ << 8) | next();
    }
    return b;
  }
  // Bytes read beyond the input (a valid stream reads at most a few).
  std::size_t overrun() const { return overrun_; }

 private:
  std::uint32_t next() {
    if (pos_ < in_.size()) return in_[pos_++];
    ++overrun_;
    return 0;
  }
  ByteView in_;
  std::size_t pos_ = 0;
  std::size_t overrun_ = 0;
  std::uint32_t code_ = 0;
  std::uint32_t range_ = 0xFFFFFFFFu;
};

// The model of one difference byte given the old byte it applies to. Contexts of "is it
// non-zero": the old byte, whether the previous difference was non-zero, how many digits
// precede in the old bytes (changed statistics are digits, mostly the last ones of a number),
// and how far back the last non-zero difference was (4 buckets: <4, <16, <64, more). The value
// is coded bit by bit in the context of the old byte. Measured on caniuse-lite releases: each
// context saves 5-10 % of the patch; slower adaptation or finer buckets cost more than they
// gain.
class DiffModel {
 public:
  DiffModel() {
    // Most differences are zero: start every context there, so unused ones cost nothing.
    std::fill(flag_.begin(), flag_.end(), static_cast<std::uint16_t>(kProbOne - 2048));
    std::fill(value_.begin(), value_.end(), static_cast<std::uint16_t>(kProbOne / 2));
  }
  template <typename Coder>
  std::uint8_t code(Coder& coder, std::uint8_t old, std::uint8_t diff) {
    const std::size_t fctx = ((static_cast<std::size_t>(old) * 2 + (prev_nonzero_ ? 1 : 0)) * 8 +
                              std::min<std::size_t>(digits_, 7)) *
                                 kDistBuckets +
                             dist_bucket();
    const int nonzero = code_bit(coder, flag_[fctx], diff != 0 ? 1 : 0);
    std::uint32_t d = 0;
    if (nonzero != 0) {
      // Bit tree over the 8 bits of the difference, in the context of the old byte.
      std::uint16_t* tree = &value_[static_cast<std::size_t>(old) * 256];
      std::uint32_t node = 1;
      for (int i = 7; i >= 0; --i) {
        const int b = code_bit(coder, tree[node], (diff >> i) & 1);
        node = (node << 1) | static_cast<std::uint32_t>(b);
      }
      d = node & 0xFF;
      since_nonzero_ = 0;
    } else if (since_nonzero_ < (1u << 30)) {
      ++since_nonzero_;
    }
    prev_nonzero_ = nonzero != 0;
    digits_ = (old >= '0' && old <= '9') ? digits_ + 1 : 0;
    return static_cast<std::uint8_t>(d);
  }

 private:
  static constexpr std::size_t kDistBuckets = 4;
  std::size_t dist_bucket() const {
    std::size_t b = 0;
    while (b + 1 < kDistBuckets && (std::uint64_t{1} << (2 * b + 2)) <= since_nonzero_) ++b;
    return b;
  }
  static int code_bit(RangeEncoder& e, std::uint16_t& p, int b) {
    e.bit(p, b);
    return b;
  }
  static int code_bit(RangeDecoder& d, std::uint16_t& p, int) { return d.bit(p); }
  std::vector<std::uint16_t> flag_ = std::vector<std::uint16_t>(256 * 2 * 8 * kDistBuckets);
  std::vector<std::uint16_t> value_ = std::vector<std::uint16_t>(256 * 256);
  bool prev_nonzero_ = false;
  std::size_t digits_ = 0;
  std::uint64_t since_nonzero_ = 1u << 30;
};

// --- matching (after Colin Percival's bsdiff 4) ---

constexpr std::int64_t kMaxMatch = 512;
// The search's step through new bytes that match nothing grows by one every kMissesPerStep
// searches, up to kMaxMissStep bytes (match, below).
constexpr std::int64_t kMissesPerStep = 64;
constexpr std::int64_t kMaxMissStep = 32;

std::int64_t match_len(const std::uint8_t* a, std::int64_t alen, const std::uint8_t* b,
                       std::int64_t blen) {
  std::int64_t i = 0;
  const std::int64_t n = std::min(alen, blen);
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Longest match of new[0..nlen) among the suffixes of old, via binary search on the suffix
// array. Returns the length and sets pos.
std::int64_t search(const std::int32_t* sa, const std::uint8_t* old, std::int64_t oldsize,
                    const std::uint8_t* nw, std::int64_t nlen, std::int64_t st, std::int64_t en,
                    std::int64_t& pos) {
  // Capping the length keeps long runs (zeros, repeated blocks) linear instead of quadratic;
  // a longer match is found again, piece by piece, from where this one ends.
  nlen = std::min(nlen, kMaxMatch);
  while (en - st >= 2) {
    const std::int64_t x = st + (en - st) / 2;
    const std::int64_t off = sa[x];
    const std::int64_t n = std::min(oldsize - off, nlen);
    if (std::memcmp(old + off, nw, static_cast<std::size_t>(n)) < 0) {
      st = x;
    } else {
      en = x;
    }
  }
  const std::int64_t x = match_len(old + sa[st], oldsize - sa[st], nw, nlen);
  const std::int64_t y = match_len(old + sa[en], oldsize - sa[en], nw, nlen);
  if (x > y) {
    pos = sa[st];
    return x;
  }
  pos = sa[en];
  return y;
}

struct Control {
  std::int64_t add = 0;
  std::int64_t copy = 0;
  std::int64_t seek = 0;
};

struct Streams {
  std::int64_t start = 0;  // old position before the first control
  std::vector<Control> controls;
  Bytes diff;   // add bytes: new - old
  Bytes extra;  // copy bytes
};

Streams match(ByteView old_view, ByteView new_view) {
  Streams st;
  const std::uint8_t* old = old_view.data();
  const std::uint8_t* nw = new_view.data();
  const auto oldsize = static_cast<std::int64_t>(old_view.size());
  const auto newsize = static_cast<std::int64_t>(new_view.size());
  std::vector<std::int32_t> sa(old_view.size() + 1);
  if (oldsize > 0) divsufsort(old, sa.data(), static_cast<std::int32_t>(oldsize));
  // bsdiff's search expects sa[0] to be the empty suffix; divsufsort leaves it out, so search
  // over [0, oldsize-1] directly.
  std::int64_t scan = 0, len = 0, pos = 0, lastscan = 0, lastpos = 0, lastoffset = 0;
  while (scan < newsize) {
    std::int64_t oldscore = 0;
    std::int64_t scsc = scan += len;
    std::int64_t misses = 0;  // searches in a row that found no match worth a control
    while (scan < newsize) {
      len = oldsize > 0
                ? search(sa.data(), old, oldsize, nw + scan, newsize - scan, 0, oldsize - 1, pos)
                : 0;
      for (; scsc < scan + len; ++scsc) {
        if (scsc + lastoffset < oldsize && scsc + lastoffset >= 0 &&
            old[scsc + lastoffset] == nw[scsc]) {
          ++oldscore;
        }
      }
      if ((len == oldscore && len != 0) || len > oldscore + 8) break;
      // Through new bytes that match nothing (bsdiff searches at every one of them), the
      // search steps further the longer the miss goes on, up to kMaxMissStep bytes: a skipped
      // position counts as one whose search found nothing. What it can miss is a match shorter
      // than the step, which the new-byte stream's zstd (prefixed by the old slice) still
      // finds; a longer one is found at a later position and extended back to its start.
      // On new random bytes the steps reach 32 within 32 KB: 34,000 searches a MB, not 1,048,576.
      const std::int64_t step = std::min<std::int64_t>(1 + misses / kMissesPerStep, kMaxMissStep);
      ++misses;
      for (std::int64_t i = 0; i < step && scan < newsize; ++i, ++scan) {
        if (scan + lastoffset < oldsize && scan + lastoffset >= 0 &&
            old[scan + lastoffset] == nw[scan]) {
          --oldscore;
        }
      }
    }
    if (len != oldscore || scan == newsize) {
      std::int64_t s = 0, sf = 0, lenf = 0;
      for (std::int64_t i = 0; lastscan + i < scan && lastpos + i < oldsize;) {
        if (old[lastpos + i] == nw[lastscan + i]) ++s;
        ++i;
        if (s * 2 - i > sf * 2 - lenf) {
          sf = s;
          lenf = i;
        }
      }
      std::int64_t lenb = 0;
      if (scan < newsize) {
        std::int64_t sb = 0;
        s = 0;
        for (std::int64_t i = 1; scan >= lastscan + i && pos >= i; ++i) {
          if (old[pos - i] == nw[scan - i]) ++s;
          if (s * 2 - i > sb * 2 - lenb) {
            sb = s;
            lenb = i;
          }
        }
      }
      if (lastscan + lenf > scan - lenb) {
        const std::int64_t overlap = (lastscan + lenf) - (scan - lenb);
        std::int64_t ss = 0, lens = 0;
        s = 0;
        for (std::int64_t i = 0; i < overlap; ++i) {
          if (nw[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i]) ++s;
          if (nw[scan - lenb + i] == old[pos - lenb + i]) --s;
          if (s > ss) {
            ss = s;
            lens = i + 1;
          }
        }
        lenf += lens - overlap;
        lenb -= lens;
      }
      for (std::int64_t i = 0; i < lenf; ++i) {
        st.diff.push_back(static_cast<std::uint8_t>(nw[lastscan + i] - old[lastpos + i]));
      }
      const std::int64_t extra_len = (scan - lenb) - (lastscan + lenf);
      st.extra.insert(st.extra.end(), nw + lastscan + lenf, nw + lastscan + lenf + extra_len);
      if (lenf > 0 || extra_len > 0) {
        st.controls.push_back({lenf, extra_len, (pos - lenb) - (lastpos + lenf)});
      } else if (!st.controls.empty()) {
        st.controls.back().seek += (pos - lenb) - (lastpos + lenf);
      } else {
        st.start += (pos - lenb) - (lastpos + lenf);
      }
      lastscan = scan - lenb;
      lastpos = pos - lenb;
      lastoffset = pos - scan;
    }
  }
  return st;
}

// --- stream coding ---

// Whether three 32 KiB samples of `raw` (its start, middle and end) gain less than 1 % at
// zstd level 1, alone and against `prefix`: bytes already compressed (a PDF, an image, a zip),
// which the slow levels would spend seconds per megabyte on to store as they are anyway.
bool incompressible(ByteView raw, ByteView prefix) {
  constexpr std::size_t kSample = 32u << 10;
  if (raw.size() < 4 * kSample) return false;
  Compressor fast(1);
  std::size_t in = 0;
  std::size_t alone = 0;
  std::size_t against = 0;
  for (std::size_t at : {std::size_t{0}, (raw.size() - kSample) / 2, raw.size() - kSample}) {
    const ByteView sample = raw.subspan(at, kSample);
    auto z = fast.compress(sample);
    if (!z.ok()) return false;
    in += sample.size();
    alone += z->size();
    if (!prefix.empty()) {
      auto zp = fast.compress_with_prefix(sample, prefix);
      if (!zp.ok()) return false;
      against += zp->size();
    }
  }
  return alone * 100 >= in * 99 && (prefix.empty() || against * 100 >= in * 99);
}

Status put_stream(Bytes& out, ByteView raw, ByteView prefix, int level) {
  std::uint8_t mode = kStored;
  Bytes best(raw.begin(), raw.end());
  if (!raw.empty() && !incompressible(raw, prefix)) {
    Compressor c(level);
    OUTPOST_ASSIGN_OR_RETURN(Bytes z, c.compress(raw));
    if (z.size() < best.size()) {
      best = std::move(z);
      mode = kZstd;
    }
    if (!prefix.empty()) {
      OUTPOST_ASSIGN_OR_RETURN(Bytes zp, c.compress_with_prefix(raw, prefix));
      if (zp.size() < best.size()) {
        best = std::move(zp);
        mode = kZstdPrefix;
      }
    }
  }
  out.push_back(mode);
  put_varint(out, raw.size());
  put_varint(out, best.size());
  out.insert(out.end(), best.begin(), best.end());
  return Status::Ok();
}

Status corrupt(const std::string& what) { return Status::Corruption(what); }

// Largest range-coded difference stream a segment of n bytes may carry.
std::uint64_t max_diff_stream(std::uint64_t n) { return 2 * n + 16; }

Result<Bytes> get_stream(Cursor& c, std::uint64_t max_raw, ByteView prefix, Decompressor& dec,
                         const char* name) {
  std::uint8_t mode = 0;
  std::uint64_t raw_len = 0, stored_len = 0;
  ByteView stored;
  if (!c.u8(mode) || !c.varint(raw_len) || !c.varint(stored_len) || !c.bytes(stored_len, stored)) {
    return corrupt(std::string(name) + " stream is truncated");
  }
  if (raw_len > max_raw) {
    return corrupt(std::string(name) + " stream declares " + std::to_string(raw_len) +
                   " bytes, more than the segment can use");
  }
  const std::string what = std::string(name) + " stream";
  switch (mode) {
    case kStored:
      if (stored_len != raw_len) return corrupt(what + " has a bad stored length");
      return Bytes(stored.begin(), stored.end());
    case kZstd: return dec.decompress(stored, static_cast<std::size_t>(raw_len), what);
    case kZstdPrefix:
      return dec.decompress_with_prefix(stored, prefix, static_cast<std::size_t>(raw_len), what);
    default: return corrupt(what + " has unknown mode " + std::to_string(mode));
  }
}

}  // namespace

Status encode_suffix_segment(ByteView slice, ByteView target, int level, Bytes& out) {
  Streams st = match(slice, target);
  Bytes ctrl, diff;
  for (const Control& k : st.controls) {
    put_varint(ctrl, static_cast<std::uint64_t>(k.add));
    put_varint(ctrl, static_cast<std::uint64_t>(k.copy));
    put_varint(ctrl, zigzag(k.seek));
  }
  {
    RangeEncoder enc(diff);
    DiffModel model;
    std::int64_t oldpos = st.start;
    std::size_t d = 0;
    for (const Control& k : st.controls) {
      for (std::int64_t i = 0; i < k.add; ++i) {
        model.code(enc, slice[static_cast<std::size_t>(oldpos + i)], st.diff[d++]);
      }
      oldpos += k.add + k.seek;
    }
    enc.finish();
  }
  if (diff.size() > max_diff_stream(target.size())) {
    return Status::Aborted("differences do not compress");  // the caller keeps zstd
  }
  put_varint(out, st.controls.size());
  put_varint(out, static_cast<std::uint64_t>(st.start));
  OUTPOST_RETURN_IF_ERROR(put_stream(out, ctrl, {}, level));
  OUTPOST_RETURN_IF_ERROR(put_stream(out, diff, {}, level));
  OUTPOST_RETURN_IF_ERROR(put_stream(out, st.extra, slice, level));
  return Status::Ok();
}

Status apply_suffix_segment(ByteView slice, ByteView payload, std::uint64_t to_len,
                            Decompressor& dec, const std::function<Status(ByteView)>& sink) {
  Cursor c(payload);
  std::uint64_t ncontrols = 0;
  if (!c.varint(ncontrols)) return corrupt("truncated control count");
  // Every control produces at least one byte.
  if (ncontrols > to_len) return corrupt("more controls than bytes");
  std::uint64_t start = 0;
  if (!c.varint(start)) return corrupt("truncated start position");
  if (start > slice.size()) return corrupt("start position outside the old slice");
  OUTPOST_ASSIGN_OR_RETURN(Bytes ctrl, get_stream(c, 30 * ncontrols, {}, dec, "control"));
  OUTPOST_ASSIGN_OR_RETURN(Bytes diff,
                           get_stream(c, max_diff_stream(to_len), {}, dec, "difference"));
  OUTPOST_ASSIGN_OR_RETURN(Bytes extra, get_stream(c, to_len, slice, dec, "new-byte"));
  if (!c.done()) return corrupt("trailing bytes after the streams");

  Cursor cc(ctrl);
  RangeDecoder rd(diff);
  auto model = std::make_unique<DiffModel>();
  std::size_t extra_pos = 0;
  std::uint64_t produced = 0;
  auto oldpos = static_cast<std::int64_t>(start);
  const auto oldsize = static_cast<std::int64_t>(slice.size());
  Bytes buf;
  constexpr std::size_t kPiece = 64 << 10;
  buf.reserve(kPiece);
  auto flush = [&]() -> Status {
    if (buf.empty()) return Status::Ok();
    Status s = sink(buf);
    buf.clear();
    return s;
  };
  for (std::uint64_t k = 0; k < ncontrols; ++k) {
    std::uint64_t add = 0, copy = 0, seek_z = 0;
    if (!cc.varint(add) || !cc.varint(copy) || !cc.varint(seek_z)) {
      return corrupt("control stream is truncated");
    }
    if (add > to_len - produced || copy > to_len - produced - add || add + copy == 0) {
      return corrupt("control " + std::to_string(k) + " overruns the segment");
    }
    if (static_cast<std::uint64_t>(oldsize - oldpos) < add) {
      return corrupt("control " + std::to_string(k) + " references bytes outside the old slice");
    }
    for (std::uint64_t i = 0; i < add; ++i) {
      const std::uint8_t old = slice[static_cast<std::size_t>(oldpos)];
      const std::uint8_t d = model->code(rd, old, 0);
      buf.push_back(static_cast<std::uint8_t>(old + d));
      ++oldpos;
      if (buf.size() == kPiece) OUTPOST_RETURN_IF_ERROR(flush());
    }
    if (rd.overrun() > 8) return corrupt("difference stream is truncated");
    if (copy > extra.size() - extra_pos) return corrupt("new-byte stream is truncated");
    for (std::uint64_t done = 0; done < copy;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(copy - done, kPiece - buf.size()));
      buf.insert(buf.end(), extra.begin() + static_cast<std::ptrdiff_t>(extra_pos),
                 extra.begin() + static_cast<std::ptrdiff_t>(extra_pos + n));
      extra_pos += n;
      done += n;
      if (buf.size() == kPiece) OUTPOST_RETURN_IF_ERROR(flush());
    }
    produced += add + copy;
    // The encoder's positions stay within [0, slice size]; anything else is damage. oldpos is
    // in [0, oldsize], so -oldpos cannot overflow (-seek could: seek may be INT64_MIN).
    const std::int64_t seek = unzigzag(seek_z);
    if ((seek > 0 && oldpos > oldsize - seek) || (seek < 0 && seek < -oldpos)) {
      return corrupt("control " + std::to_string(k) + " seeks outside the old slice");
    }
    oldpos += seek;
  }
  OUTPOST_RETURN_IF_ERROR(flush());
  if (produced != to_len) {
    return corrupt("produces " + std::to_string(produced) + " bytes, segment has " +
                   std::to_string(to_len));
  }
  if (!cc.done() || extra_pos != extra.size()) return corrupt("streams have unused bytes");
  return Status::Ok();
}

}  // namespace outpost::packaging::delta_detail

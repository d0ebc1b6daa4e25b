#include "outpost/packaging/compress.h"

#include <zstd.h>

#include <algorithm>
#include <string>

namespace outpost::packaging {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

std::string zerr(std::size_t code) { return ZSTD_getErrorName(code); }

int window_log_for(std::size_t bytes) {
  int log = 10;
  while (log < kMaxWindowLog && (std::size_t{1} << log) < bytes) ++log;
  return log;
}

}  // namespace

struct Compressor::Impl {
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx{ZSTD_createCCtx()};
};

Compressor::Compressor(int level, bool checksum)
    : impl_(std::make_unique<Impl>()),
      level_(std::clamp(level, 1, ZSTD_maxCLevel())),
      checksum_(checksum) {}
Compressor::~Compressor() = default;
Compressor::Compressor(Compressor&&) noexcept = default;
Compressor& Compressor::operator=(Compressor&&) noexcept = default;

Result<Bytes> Compressor::compress(ByteView raw) { return compress_with_prefix(raw, {}); }

Result<Bytes> Compressor::compress_with_prefix(ByteView raw, ByteView prefix) {
  ZSTD_CCtx* c = impl_->cctx.get();
  if (c == nullptr) return Status::Internal("zstd: cannot allocate a compression context");
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  std::size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level_);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum_ ? 1 : 0);
  if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(r) && !prefix.empty()) {
    // Patch-from: the window must reach back over the whole prefix.
    r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log_for(prefix.size() + raw.size()));
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_refPrefix(c, prefix.data(), prefix.size());
  } else if (!ZSTD_isError(r) && raw.size() > (std::size_t{1} << kMaxWindowLog)) {
    // Never produce a frame our own Decompressor would refuse.
    r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, kMaxWindowLog);
  }
  if (ZSTD_isError(r)) return Status::Internal("zstd: setting parameters: " + zerr(r));
  Bytes out(ZSTD_compressBound(raw.size()));
  const std::size_t n = ZSTD_compress2(c, out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(n)) return Status::Internal("zstd: compressing: " + zerr(n));
  out.resize(n);
  return out;
}

struct Decompressor::Impl {
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx{ZSTD_createDCtx()};
};

Decompressor::Decompressor() : impl_(std::make_unique<Impl>()) {}
Decompressor::~Decompressor() = default;
Decompressor::Decompressor(Decompressor&&) noexcept = default;
Decompressor& Decompressor::operator=(Decompressor&&) noexcept = default;

Result<Bytes> Decompressor::decompress(ByteView frame, std::size_t expected_size,
                                       std::string_view what) {
  return run(frame, {}, expected_size, what);
}

Result<Bytes> Decompressor::decompress_with_prefix(ByteView frame, ByteView prefix,
                                                   std::size_t expected_size,
                                                   std::string_view what) {
  return run(frame, prefix, expected_size, what);
}

Result<Bytes> Decompressor::run(ByteView frame, ByteView prefix, std::size_t expected_size,
                                std::string_view what_view) {
  const std::string what(what_view);
  ZSTD_DCtx* d = impl_->dctx.get();
  if (d == nullptr) return Status::Internal("zstd: cannot allocate a decompression context");
  ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
  std::size_t r = ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, kMaxWindowLog);
  if (!ZSTD_isError(r) && !prefix.empty()) r = ZSTD_DCtx_refPrefix(d, prefix.data(), prefix.size());
  if (ZSTD_isError(r)) return Status::Internal("zstd: setting parameters: " + zerr(r));

  // One byte more than declared: if zstd fills it, the frame lies about its size.
  Bytes out(expected_size + 1);
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  for (;;) {
    const std::size_t ret = ZSTD_decompressStream(d, &ob, &in);
    if (ZSTD_isError(ret)) {
      return Status::Corruption(what + " is not a valid zstd frame: " + zerr(ret));
    }
    if (ob.pos > expected_size) {
      return Status::Corruption("decompression bomb: " + what + " decompresses past its declared " +
                                std::to_string(expected_size) + " bytes");
    }
    if (ret == 0) break;  // frame complete
    if (in.pos == in.size && ob.pos < ob.size) {
      // zstd flushed all it could and wants more input than the frame has.
      return Status::Corruption(what + " is truncated: its zstd frame ends early");
    }
  }
  if (in.pos != in.size) {
    return Status::Corruption(what + " has trailing bytes after its zstd frame");
  }
  if (ob.pos != expected_size) {
    return Status::Corruption(what + " decompresses to " + std::to_string(ob.pos) +
                              " bytes, declared " + std::to_string(expected_size));
  }
  out.resize(expected_size);
  return out;
}

std::optional<std::uint64_t> zstd_frame_content_size(ByteView frame) {
  unsigned long long n = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR) return std::nullopt;
  return static_cast<std::uint64_t>(n);
}

}  // namespace outpost::packaging

// Byte types and small helpers shared by every module.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace outpost {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Lowercase hex of the bytes.
std::string to_hex(ByteView bytes);
// Parses lowercase or uppercase hex; nullopt on odd length or a non-hex character.
std::optional<Bytes> from_hex(std::string_view hex);

// Little-endian fixed-width encoding, used by the binary formats (docs/format-*.md).
void put_u32le(Bytes& out, std::uint32_t v);
void put_u64le(Bytes& out, std::uint64_t v);
std::uint32_t get_u32le(const std::uint8_t* p);
std::uint64_t get_u64le(const std::uint8_t* p);

// LEB128: 7 bits a byte, least significant first, the high bit set on all but the last.
void put_varint(Bytes& out, std::uint64_t v);
// The varint at bytes[*pos], advancing *pos past it; nullopt when it runs past the end or
// past 64 bits.
std::optional<std::uint64_t> get_varint(ByteView bytes, std::size_t* pos);

}  // namespace outpost

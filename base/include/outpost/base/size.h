// Sizes as people write them in a configuration file or on the command line.
#pragma once
#include <cstdint>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost {

// "0", "1500", "64k", "10M", "1.5G", "2T": powers of 1000 (k, M, G, T, with or without a
// trailing B, in any case); "KiB", "MiB" and "GiB" are powers of 1024. Up to nine decimals
// count. kInvalidArgument, naming the text and showing how to write one, for anything else,
// including a size past 2^64 - 1 bytes.
Result<std::uint64_t> parse_byte_size(std::string_view text);

}  // namespace outpost

// Record layouts of the node's tables (docs/format-store.md). Internal to the sync module.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/bytes.h"
#include "outpost/base/json.h"
#include "outpost/base/status.h"
#include "outpost/crypto/hash.h"
#include "outpost/storage/store.h"

namespace outpost::node::records {

// kChunks value: u8 codec (1 = one zstd frame) | u32le raw length | stored bytes.
inline constexpr std::uint8_t kCodecZstd = 1;
Bytes chunk_value(std::uint32_t raw_length, ByteView frame);
struct StoredChunk {
  std::uint32_t raw_length = 0;
  ByteView frame;  // a view into the value it was parsed from
};
Result<StoredChunk> parse_chunk_value(ByteView value);

// kBundles value (JSON): {"repo","current","versions":[...],"confirmed"}.
struct BundleRecord {
  std::string repo;
  std::uint64_t current = 0;
  std::vector<std::uint64_t> versions;
  std::int64_t confirmed = 0;
};
Bytes encode(const BundleRecord& r);
Result<BundleRecord> parse_bundle(ByteView value);

// kSubscriptions value (JSON): {"id","location","mirrors":[...],"added","last_sync"}, and
// "ranks":[...] (rank patterns, highest first) when the subscription has any.
Bytes encode_subscription(const std::string& id, const std::string& location, std::int64_t added,
                          std::int64_t last_sync, const std::vector<std::string>& mirrors,
                          const std::vector<std::string>& ranks);

// kSettings keys and values.
// "budget": {"day":N,"month":N}; "used" \0 "day:YYYY-MM-DD" or "month:YYYY-MM" -> u64le bytes;
// "limits" \0 origin -> ServerLimits JSON; "etag" \0 repo \n location -> the timestamp's ETag.
inline constexpr std::string_view kBudgetKey = "budget";
Bytes usage_key(std::string_view period);
Bytes limits_key(std::string_view origin);

// kTrust keys.
inline constexpr std::string_view kTimeFloorKey = "time-floor";
Bytes accepted_version_key(std::string_view bundle);  // "version" \0 bundle -> u64le

// kMetadata keys: repo \0 role, with delegated roles as "delegated/<name>".
Bytes metadata_key(std::string_view repo, std::string_view role);

std::optional<std::uint64_t> get_u64(const std::optional<Bytes>& v);
Bytes u64_value(std::uint64_t v);

}  // namespace outpost::node::records

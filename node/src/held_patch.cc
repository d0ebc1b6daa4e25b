#include "outpost/node/held_patch.h"

#include <algorithm>

#include "node_internal.h"
#include "outpost/node/store_files.h"
#include "outpost/packaging/compress.h"
#include "outpost/packaging/content.h"
#include "outpost/packaging/delta.h"
#include "outpost/storage/store.h"

namespace outpost::node {

using detail::view;

Result<Bytes> make_held_patch(storage::Store& store, const std::string& bundle, std::uint64_t from,
                              std::uint64_t to, std::uint64_t max_stream) {
  max_stream = std::min(max_stream, kMaxHeldPatchStream);
  const std::string what = bundle + " " + std::to_string(from) + "->" + std::to_string(to);
  OUTPOST_ASSIGN_OR_RETURN(auto txn, store.read());
  for (std::uint64_t v : {from, to}) {
    OUTPOST_ASSIGN_OR_RETURN(
        auto m, get_file(txn, storage::Table::kManifests, view(storage::version_key(bundle, v))));
    if (!m) return Status::NotFound(bundle + " version " + std::to_string(v) + " is not held here");
  }
  OUTPOST_ASSIGN_OR_RETURN(auto old, detail::load_version(txn, bundle, from));
  OUTPOST_ASSIGN_OR_RETURN(auto now, detail::load_version(txn, bundle, to));
  if (packaging::content_stream_size(old.manifest) > max_stream ||
      packaging::content_stream_size(now.manifest) > max_stream) {
    return Status::ResourceExhausted("the content of " + what + " is too large to patch on demand");
  }
  packaging::Decompressor dec;
  OUTPOST_ASSIGN_OR_RETURN(Bytes from_stream, detail::content_stream(txn, old, dec));
  OUTPOST_ASSIGN_OR_RETURN(Bytes to_stream, detail::content_stream(txn, now, dec));
  detail::end(txn);
  packaging::DeltaParams params;
  params.window = kMaxHeldPatchStream;
  return packaging::encode_delta(view(from_stream), view(to_stream), params);
}

}  // namespace outpost::node

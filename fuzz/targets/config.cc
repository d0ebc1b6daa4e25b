// The daemon's configuration (node/serve, outpost/serve/config.h): parse_config, which
// `outpost serve` and `--check-config` run on /etc/outpost/outpost.toml (TOML, toml++ without
// exceptions). The file is written by the operator, not by the network, but a typo must give
// a message, never a crash. Properties: a rejection is kInvalidArgument with a message naming
// the file; an accepted configuration
// names a store and an admin socket.
#include "outpost/serve/config.h"

#include <string>
#include <string_view>

#include "fuzz/fuzz.h"

OUTPOST_FUZZ_TARGET(config) {
  const std::string path = "/etc/outpost/outpost.toml";
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  outpost::Result<outpost::serve::Config> parsed = outpost::serve::parse_config(text, path);
  if (!parsed.ok()) {
    FUZZ_CHECK(outpost::fuzz::clear_rejection(parsed.error(), outpost::Code::kInvalidArgument));
    FUZZ_CHECK(parsed.error().message().find(path) != std::string::npos);
    return 0;
  }
  const outpost::serve::Config& c = parsed.value();
  FUZZ_CHECK(c.path == path);
  FUZZ_CHECK(!c.store.empty() && !c.admin_socket.empty());
  return 0;
}

// Peer serving: every repository this node holds, presented in the static repository layout
// (packaging/layout.h) under /repo/<repository id>/, so another node subscribes to it and syncs
// from it exactly as from a mirror (docs/daemon.md, "Peer serving").
//
// What a store can present (docs/format-store.md): the TUF metadata it trusts (root, timestamp,
// snapshot, targets, delegated roles: the versions it holds, by their consistent-snapshot
// names), the manifests and chunk indexes of the versions it holds, and the packs those indexes
// name as a *sparse* file: the pack magic, and for every chunk the store holds, its record
// header and stored bytes at the offsets the index gives; bytes of chunks it does not hold read
// as zeros. A pack's length is not known, so packs are served to Range requests only
// ("Content-Range: bytes A-B/*"). Patches, metadata update files and `.zst` manifests are not
// held and answer 404: a node syncing from a peer falls back to the file-by-file metadata and
// the chunk route, and verifies everything against the publisher's signatures as from any
// mirror. Nothing here writes to the store: a peer never changes this node's state.
//
// Many pieces in one response: GET <prefix><id>/pieces?chunks=HEX,HEX,...&patches=HEX,...
// answers one pack (docs/format-repository.md, "Pack"; application/x-outpost-pack) holding a
// record for every named chunk and kept patch this node holds, chunks first, in the order
// asked; the count of those it does not hold is in the X-Outpost-Missing header (404 when it
// holds none). At most kMaxPieces pieces and kMaxPiecesBytes bytes per request (413 beyond;
// 400 for a malformed hash). The requester checks each record by its hash as it would any
// mirror's.
// A patch computed on demand: GET <prefix><id>/pieces?bundle=NAME&from=N&to=M answers a pack
// with one patch record (named "NAME@N-M") from held version N to held version M, made with
// the delta engine a USB export uses (node/held_patch.h); content streams over 32 MiB and
// patches over kMaxPiecesBytes are refused (413), one is made at a time (503 with Retry-After
// to the others), and the last few are cached. The requester accepts it only when the rebuilt
// content matches the publisher's signed content root.
// Every response under the prefix carries "X-Outpost-Peer: pieces", which is how a syncing
// node knows it may use these (sync/source.h, Source::peer()).
//
// Thread-safety: handle() from any number of threads. The catalog (which path is which record)
// is rebuilt when invalidate() was called or it is older than a few seconds.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "outpost/serve/http_server.h"

namespace outpost::storage {
class Store;
}

namespace outpost::serve {

struct PeerStats {
  std::uint64_t requests = 0;
  std::uint64_t bytes = 0;            // response bodies
  std::uint64_t not_found = 0;        // 404s (patches, update files, what is not held)
  std::uint64_t peers = 0;            // distinct client addresses seen in the last 10 minutes
  std::uint64_t pieces_requests = 0;  // GET <id>/pieces (many pieces, or a patch on demand)
  std::uint64_t patches_made = 0;     // patches computed on demand (not from the cache)
};

class PeerServer {
 public:
  // store must outlive the PeerServer.
  explicit PeerServer(storage::Store& store);
  ~PeerServer();
  PeerServer(const PeerServer&) = delete;
  PeerServer& operator=(const PeerServer&) = delete;

  // Registers prefix ("/repo/") on server: "<prefix>" lists the repositories (JSON),
  // "<prefix><id>/<path>" serves a file of one.
  void install(HttpServer& server, const std::string& prefix = "/repo/");
  // request.path relative to the prefix ("" or "<id>/<path>").
  HttpResponse handle(const HttpRequest& request, const std::string& relative);
  // The store changed (a sync committed): the next request rebuilds the catalog.
  void invalidate();
  PeerStats stats() const;

  struct Impl;

  // Limits of GET <prefix><id>/pieces.
  static constexpr std::size_t kMaxPieces = 4096;
  static constexpr std::size_t kMaxPiecesBytes = 32u << 20;

 private:
  HttpResponse pieces(const HttpRequest& request, const void* repo_files);
  HttpResponse patch_on_demand(const HttpRequest& request, const void* repo_files,
                               const std::string& repo);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::serve

// outpost: the command-line tool and daemon. See cli.cc for the commands.
#include <cstdio>
#include <new>
#include <system_error>

#include "outpost/crypto/hash.h"

int outpost_main(int argc, char** argv);

int main(int argc, char** argv) {
  if (!outpost::crypto::init()) {
    std::fprintf(stderr, "outpost: error: cannot initialise libsodium\n");
    return 1;
  }
  // Out of memory, address space or threads (ulimit -v, a small Raspberry Pi): one clear line
  // and the exit code of a full store, never an abort. The store is safe: every write is a
  // transaction, and the unwinding aborts the open one.
  try {
    return outpost_main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "outpost: error: out of memory: raise the address-space limit (ulimit -v) or "
                 "free memory, then run the command again\n");
    return 5;
  } catch (const std::system_error& e) {
    std::fprintf(stderr,
                 "outpost: error: %s: the system refused a resource (memory, threads or files): "
                 "raise the limit or free memory, then run the command again\n",
                 e.what());
    return 5;
  }
}

// outpost: the command-line tool and daemon. See cli.cc for the commands.
#include <cstdio>

#include "outpost/crypto/hash.h"

int outpost_main(int argc, char** argv);

int main(int argc, char** argv) {
  if (!outpost::crypto::init()) {
    std::fprintf(stderr, "outpost: error: cannot initialise libsodium\n");
    return 1;
  }
  return outpost_main(argc, argv);
}

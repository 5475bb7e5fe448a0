// Test-only: prints the server secret of a data dir's store (read beside a
// running server, as `sandboxd audit` reads it), so the e2e suite can sign
// what the server signs with it (template file upload URLs) and check the
// signature scheme from outside. Reading it needs what reading the data dir
// needs (root), so it opens nothing the secret's owner could not already
// read. Usage: store_secret DBDIR
#include <cstdio>

#include "storage/store.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: store_secret DBDIR\n");
    return 2;
  }
  auto db = sandboxd::store::open_secondary(argv[1]);
  if (!db) {
    std::fprintf(stderr, "store_secret: %s\n", db.error().message.c_str());
    return 1;
  }
  std::printf("%s\n", (*db)->secret().c_str());
  return 0;
}

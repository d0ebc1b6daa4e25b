#include <catch2/catch.hpp>

#include "fixture.h"

using namespace outpost::test;

TEST_CASE("a node subscribes, syncs the samples and reads them back byte for byte",
          "[integration]") {
  Published p;
  RunResult sub = p.subscribe();
  INFO(sub.err);
  REQUIRE(sub.exit_code == 0);
  RunResult sync = p.node({"sync"});
  INFO(sync.err);
  REQUIRE(sync.exit_code == 0);
  CHECK(sync.out.find("un/ga/A-RES-75-202") != std::string::npos);

  RunResult ls = p.node({"ls", "--json"});
  REQUIRE(ls.exit_code == 0);
  CHECK(ls.out.find("\"name\": \"un/ga/A-RES-75-202\"") != std::string::npos);
  CHECK(ls.out.find("\"name\": \"itu/ict/digital-divide-2019\"") != std::string::npos);
  CHECK(ls.out.find("\"kind\": \"resolution\"") != std::string::npos);

  RunResult show = p.node({"show", "un/ga/A-RES-75-202"});
  REQUIRE(show.exit_code == 0);
  CHECK(show.out.find("A/RES/75/202") != std::string::npos);

  RunResult cat = p.node({"cat", "itu/ict/digital-divide-2019", "data.csv"});
  REQUIRE(cat.exit_code == 0);
  CHECK(cat.out == read_text(p.indicator_src() + "/data.csv"));

  REQUIRE(p.node({"checkout", "un/ga/A-RES-75-202", p.dir / "out"}).exit_code == 0);
  CHECK(read_text(p.dir / "out/A-RES-75-202.en.md") ==
        read_text(p.resolution_src() + "/A-RES-75-202.en.md"));
  CHECK(read_text(p.dir / "out/bundle.json") == read_text(p.resolution_src() + "/bundle.json"));

  RunResult verify = p.node({"verify"});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
}

TEST_CASE("a second sync with nothing new changes nothing and says so", "[integration]") {
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  RunResult again = p.node({"sync", "--json"});
  REQUIRE(again.exit_code == 0);
  CHECK(again.out.find("\"unchanged\": true") != std::string::npos);
  CHECK(again.out.find("\"updated\": []") != std::string::npos);
}

TEST_CASE("a new version with one edited file comes as a patch, or as only the changed chunks",
          "[integration]") {
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  SECTION("the publisher's patch from version 1 is the cheapest route") {
    // The resolution (11 KB compressed): a patch from version 1 saves more than the 1 KiB
    // that pays for its place in the manifest (repository.h, kMinRungSaving).
    const std::string text = p.resolution_src() + "/A-RES-75-202.en.md";
    write_text(text, read_text(text) + "\nCorrigendum: paragraph 3, for 2021 read 2022.\n");
    RunResult pub = p.publish_resolution();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
    RunResult sync = p.node({"sync", "--json"});
    INFO(sync.err);
    REQUIRE(sync.exit_code == 0);
    CHECK(sync.out.find("\"route\": \"patch\"") != std::string::npos);
    CHECK(p.node({"cat", "un/ga/A-RES-75-202", "A-RES-75-202.en.md"}).out == read_text(text));
  }
  SECTION(
      "the indicator's patch from 0 (800 B) is all it lists, and without it, only the changed "
      "chunk is fetched") {
    std::string csv = p.indicator_src() + "/data.csv";
    write_text(csv, read_text(csv) + "17,17.6,17.6.1,X,Y,1,World,2020,42,PERCENT,,ITU,new row\n");
    RunResult pub = p.publish_indicator();
    INFO(pub.err);
    REQUIRE(pub.exit_code == 0);
    // Patches from 0 only: the resolution's, and the indicator's of versions 1 and 2.
    CHECK(files_ending(p.repo() + "/objects", ".patch").size() == 3);
    for (const auto& f : files_ending(p.repo() + "/objects", ".patch")) std::filesystem::remove(f);
    // Update files carry small patches: drop them too.
    for (const auto& f : files_ending(p.repo() + "/metadata/updates", ".upd")) {
      std::filesystem::remove(f);
    }
    RunResult sync = p.node({"sync", "--json"});
    INFO(sync.err);
    REQUIRE(sync.exit_code == 0);
    // data.csv is one small chunk; bundle.json is unchanged and already held.
    CHECK(sync.out.find("\"route\": \"chunks\"") != std::string::npos);
    CHECK(sync.out.find("\"chunks_fetched\": 1") != std::string::npos);
    CHECK(sync.out.find("\"chunks_held\": 1") != std::string::npos);
    RunResult ls = p.node({"ls", "--json"});
    CHECK(ls.out.find("\"version\": 2") != std::string::npos);
    RunResult cat = p.node({"cat", "itu/ict/digital-divide-2019", "data.csv"});
    CHECK(cat.out == read_text(csv));

    // gc keeps the current and previous versions by default; --retain 1 drops version 1.
    RunResult gc = p.node({"gc", "--retain", "1", "--json"});
    REQUIRE(gc.exit_code == 0);
    CHECK(gc.out.find("\"versions_removed\": 1") != std::string::npos);
    CHECK(gc.out.find("\"chunks_removed\": 1") != std::string::npos);
    CHECK(p.node({"verify"}).exit_code == 0);
    CHECK(p.node({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out == read_text(csv));
  }
}

TEST_CASE("a per-bundle retention is remembered and honoured by later collections",
          "[integration]") {
  Published p;
  REQUIRE(p.subscribe().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  std::string csv = p.indicator_src() + "/data.csv";
  write_text(csv, read_text(csv) + "17,17.6,17.6.1,X,Y,1,World,2021,43,PERCENT,,ITU,row\n");
  REQUIRE(p.publish_indicator().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);

  // The default keeps two versions: nothing to collect yet.
  RunResult gc = p.node({"gc", "--json"});
  REQUIRE(gc.exit_code == 0);
  CHECK(gc.out.find("\"versions_removed\": 0") != std::string::npos);

  RunResult one =
      p.node({"gc", "--bundle", "itu/ict/digital-divide-2019", "--retain", "1", "--json"});
  INFO(one.err);
  REQUIRE(one.exit_code == 0);
  CHECK(one.out.find("\"versions_removed\": 1") != std::string::npos);
  RunResult show = p.node({"show", "itu/ict/digital-divide-2019", "--json"});
  CHECK(show.out.find("\"held_versions\": [\n    2\n  ]") != std::string::npos);

  // A third version: the remembered retention of 1 applies without being repeated.
  write_text(csv, read_text(csv) + "17,17.6,17.6.1,X,Y,1,World,2022,44,PERCENT,,ITU,row\n");
  REQUIRE(p.publish_indicator().exit_code == 0);
  REQUIRE(p.node({"sync"}).exit_code == 0);
  gc = p.node({"gc", "--json"});
  CHECK(gc.out.find("\"versions_removed\": 1") != std::string::npos);
  CHECK(p.node({"cat", "itu/ict/digital-divide-2019", "data.csv"}).out == read_text(csv));
  CHECK(p.node({"gc", "--bundle", "itu/ict/x/../y", "--retain", "1"}).exit_code == 2);
}

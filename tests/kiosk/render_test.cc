// The kiosk's pure parts: Markdown, CSV and chart, catalogs, text helpers. Each bad input of
// issue 11 has its test here or in pages_test.cc.
#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <string>

#include "outpost/kiosk/catalog.h"
#include "outpost/kiosk/indicator.h"
#include "outpost/kiosk/markdown.h"
#include "outpost/kiosk/text.h"
#include "support/test_support.h"

namespace outpost::kiosk {
namespace {

const Messages& english() {
  static Messages m(catalog("en"));
  return m;
}

TEST_CASE("HTML and script inside a resolution are shown as text, never as markup", "[kiosk]") {
  const std::string md =
      "Hello <script>alert(1)</script> and <img src=x onerror=alert(2)>\n\n"
      "<div onclick=\"x()\">block</div>\n\n"
      "[click](javascript:alert(3)) [ok](https://un.org) ![pic](http://x/y.png \"t\")\n";
  RenderedDocument d = render_markdown(md);
  CHECK(d.html.find("<script") == std::string::npos);
  CHECK(d.html.find("<img") == std::string::npos);
  CHECK(d.html.find("<div") == std::string::npos);
  CHECK(d.html.find("javascript:") == std::string::npos);
  CHECK(d.html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  CHECK(d.html.find("&lt;div onclick=") != std::string::npos);
  CHECK(d.html.find("<a href=\"https://un.org\">ok</a>") != std::string::npos);
}

TEST_CASE("malformed Markdown renders as text without failing", "[kiosk]") {
  std::string md = "**unclosed *emphasis [link( ```\n";
  md += "```\nunterminated fence\n";
  md += std::string(5000, '>') + " deep\n";
  md += std::string(3000, '[') + std::string(3000, '*') + "\n";
  md += "\xFF\xFE bad bytes \xC3\n";
  RenderedDocument d = render_markdown(md);
  CHECK(!d.html.empty());
  CHECK(valid_utf8(d.html) == d.html);
  CHECK(d.html.find("unterminated fence") != std::string::npos);
}

TEST_CASE("operative paragraphs get stable anchors and footnotes link both ways", "[kiosk]") {
  const std::string md = outpost::test::read_text(outpost::test::samples_dir() +
                                                  "/resolutions/A-RES-75-202/A-RES-75-202.en.md");
  RenderedDocument d = render_markdown(md);
  CHECK(d.html.find("<li id=\"p16\">") != std::string::npos);
  CHECK(d.html.find("<li id=\"p1\">") != std::string::npos);
  CHECK(d.footnotes >= 10);
  // Note 10 ("Resolution 70/1.") is referenced after "Development" in paragraph 3.
  CHECK(d.html.find("<a href=\"#fn10\" id=\"fnref10\"") != std::string::npos);
  CHECK(d.html.find("<li id=\"fn10\" value=\"10\">Resolution 70/1. <a href=\"#fnref10\"") !=
        std::string::npos);
  // Every id is unique (a duplicate breaks links and accessibility).
  std::regex id_re("id=\"([^\"]+)\"");
  std::set<std::string> ids;
  for (auto it = std::sregex_iterator(d.html.begin(), d.html.end(), id_re);
       it != std::sregex_iterator(); ++it) {
    INFO((*it)[1]);
    CHECK(ids.insert((*it)[1]).second);
  }
  bool p16 = false;
  for (const auto& p : d.paragraphs) {
    if (p.anchor == "p16") p16 = p.text.find("gender") != std::string::npos || !p.text.empty();
  }
  CHECK(p16);
}

TEST_CASE("a CSV cell holding HTML and script is escaped in the table and the chart", "[kiosk]") {
  const std::string csv =
      "SeriesDescription,GeoAreaName,TimePeriod,Value,Units\n"
      "<script>alert(1)</script>,\"<b onmouseover=x>Area</b>\",2019,5,\"<i>u</i>\"\n";
  CsvTable t = parse_csv(csv);
  IndicatorPage p = render_indicator(t, {}, english(), "/b/x", "");
  const std::string all = p.filters + p.chart + p.table;
  CHECK(p.chart_drawn);
  CHECK(all.find("<script") == std::string::npos);
  CHECK(all.find("<b ") == std::string::npos);
  CHECK(all.find("<i>") == std::string::npos);
  CHECK(all.find("&lt;script&gt;") != std::string::npos);
  CHECK(all.find("&lt;b onmouseover=x&gt;Area&lt;/b&gt;") != std::string::npos);
}

TEST_CASE("a CSV with ragged rows shows every row and says how many are ragged", "[kiosk]") {
  const std::string csv =
      "GeoAreaName,TimePeriod,Value\nA,2019,1\nB,2019\nC,2019,3,extra,cells\n\nD\n";
  CsvTable t = parse_csv(csv);
  CHECK(t.rows() == 4);
  CHECK(t.ragged_rows() == 3);
  CHECK(t.cell(1, 2).empty());
  IndicatorPage p = render_indicator(t, {}, english(), "/b/x", "");
  CHECK(p.table.find("3 rows of the file do not have as many cells as the header.") !=
        std::string::npos);
  CHECK(p.table.find("<td>C</td>") != std::string::npos);
}

TEST_CASE("a CSV of 100,000 rows is shown a page at a time and the chart gives way to the table",
          "[kiosk]") {
  std::string csv = "SeriesDescription,GeoAreaName,TimePeriod,Value,Units\n";
  for (int i = 0; i < 100000; ++i) {
    csv += "S,Area " + std::to_string(i % 500) + "," + std::to_string(1900 + i / 500) + "," +
           std::to_string(i) + ",N\n";
  }
  CsvTable t = parse_csv(csv);
  IndicatorQuery q;
  q.page = 3;
  IndicatorPage p = render_indicator(t, q, english(), "/b/x", "hl=fr");
  CHECK(t.rows() == 100000);
  CHECK(p.matching_rows == 100000);
  CHECK(!p.chart_drawn);
  CHECK(p.chart.find("too many values") != std::string::npos);
  CHECK(p.table.find("page 3 of 2000") != std::string::npos);
  CHECK(p.table.find("<td class=\"num\">100</td>") != std::string::npos);  // row 101
  CHECK(p.table.find("<td class=\"num\">99</td>") == std::string::npos);
  CHECK(p.table.find("page=4&amp;hl=fr") != std::string::npos);
  CHECK(p.table.size() < 20000);
  CHECK(t.bytes() < 2 * csv.size() + 4 * 500000);
}

TEST_CASE("non-numeric values: the chart degrades to the table, which shows them as published",
          "[kiosk]") {
  const std::string csv =
      "SeriesDescription,GeoAreaName,TimePeriod,Value\nS,A,2019,n/a\nS,B,2019,<5\nS,C,2019,0x10\n";
  IndicatorPage p = render_indicator(parse_csv(csv), {}, english(), "/b/x", "");
  CHECK(!p.chart_drawn);
  CHECK(p.chart.find("the values are not numbers") != std::string::npos);
  CHECK(p.table.find("<td class=\"num\">n/a</td>") != std::string::npos);
  CHECK(p.table.find("<td class=\"num\">&lt;5</td>") != std::string::npos);
  // Mixed: the numbers are drawn, the rest counted.
  const std::string mixed =
      "SeriesDescription,GeoAreaName,TimePeriod,Value\nS,A,2019,4\nS,B,2019,x\n";
  IndicatorPage m = render_indicator(parse_csv(mixed), {}, english(), "/b/x", "");
  CHECK(m.chart_drawn);
  CHECK(m.chart.find("1 value is not a number and is not drawn.") != std::string::npos);
}

TEST_CASE("a series over several periods is a line chart with a text alternative", "[kiosk]") {
  const std::string csv =
      "SeriesDescription,GeoAreaName,TimePeriod,Value,Units\n"
      "S,World,2017,10,PERCENT\nS,World,2018,12,PERCENT\nS,World,2019,17,PERCENT\n"
      "S,LDC,2017,3,PERCENT\nS,LDC,2019,5,PERCENT\n";
  IndicatorQuery q;
  q.series = "S";
  IndicatorPage p = render_indicator(parse_csv(csv), q, english(), "/b/x", "");
  REQUIRE(p.chart_drawn);
  CHECK(p.chart.find("<polyline") != std::string::npos);
  CHECK(p.chart.find("role=\"img\"") != std::string::npos);
  CHECK(p.chart.find("World: 10 (2017) \xE2\x86\x92 17 (2019)") != std::string::npos);
  q.area = "LDC";
  IndicatorPage l = render_indicator(parse_csv(csv), q, english(), "/b/x", "");
  CHECK(l.matching_rows == 2);
  CHECK(l.filters.find("<option selected value=\"LDC\">") != std::string::npos);
}

TEST_CASE("quoted CSV fields keep commas, quotes and newlines, and a BOM is skipped", "[kiosk]") {
  CsvTable t = parse_csv(
      "\xEF\xBB\xBF"
      "a,b\r\n\"x, \"\"y\"\"\",\"two\nlines\"\r\n\"open,end");
  CHECK(t.header() == std::vector<std::string>{"a", "b"});
  REQUIRE(t.rows() == 2);
  CHECK(t.cell(0, 0) == "x, \"y\"");
  CHECK(t.cell(0, 1) == "two\nlines");
  CHECK(t.cell(1, 0) == "open,end");
}

TEST_CASE("the catalogs parse and French and Arabic translate every English message", "[kiosk]") {
  const std::string dir = std::string(OUTPOST_SOURCE_DIR) + "/node/kiosk/po/";
  auto pot = parse_po(outpost::test::read_text(dir + "kiosk.pot"), "pot");
  REQUIRE(pot.ok());
  for (const std::string lang : {"en", "fr", "ar"}) {
    auto c = parse_po(outpost::test::read_text(dir + lang + ".po"), lang);
    INFO(lang);
    REQUIRE(c.ok());
    // kiosk.pot has empty msgstrs, so it holds no message; use the English catalog as the list.
    const Catalog& en = catalog("en");
    CHECK(en.messages.size() >= 60);
    for (const auto& [id, forms] : en.messages) {
      INFO(id);
      auto it = c->messages.find(id);
      REQUIRE(it != c->messages.end());
      CHECK(it->second.size() == (forms.size() == 1 ? 1 : (lang == "ar" ? 6u : 2u)));
    }
    CHECK(catalog(lang).messages.size() == c->messages.size());
  }
  CHECK(catalog("ar").rtl);
  CHECK(!catalog("fr").rtl);
  CHECK(catalog("fr").name ==
        "Fran\xC3\xA7"
        "ais");
  Messages ar(catalog("ar"));
  CHECK(ar("Search") != "Search");
  CHECK(ar.plural("{count} row", "{count} rows", 11).find("11") != std::string::npos);
}

TEST_CASE("a malformed catalog is refused naming the line", "[kiosk]") {
  auto c = parse_po("msgid \"a\"\nmsgstr \"b\"\n\nbogus \"x\"\n", "xx");
  REQUIRE(!c.ok());
  CHECK(c.error().message().find("xx.po:4") != std::string::npos);
  auto fuzzy = parse_po("#, fuzzy\nmsgid \"a\"\nmsgstr \"b\"\n", "xx");
  REQUIRE(fuzzy.ok());
  CHECK(fuzzy->messages.empty());
}

TEST_CASE("Accept-Language picks the best catalog by q-value and primary tag", "[kiosk]") {
  CHECK(negotiate("") == "en");
  CHECK(negotiate("fr-CA,fr;q=0.9,en;q=0.8") == "fr");
  CHECK(negotiate("de,ar;q=0.5,en;q=0.4") == "ar");
  CHECK(negotiate("de") == "en");
  CHECK(negotiate("ar;q=0, fr;q=0.1") == "fr");
  CHECK(negotiate(std::string(10000, ',')) == "en");
}

TEST_CASE("text helpers repair UTF-8, cut on character boundaries and escape", "[kiosk]") {
  CHECK(valid_utf8("a\xFF"
                   "b") ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(valid_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(valid_utf8(std::string("a\0b", 3)) ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(utf8_prefix("\xC3\xA9\xC3\xA9", 3) == "\xC3\xA9");
  CHECK(escape_html("<a href='x'>&\"") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
  CHECK(url_encode("un/ga/A b", true) == "un/ga/A%20b");
}

}  // namespace
}  // namespace outpost::kiosk

// Indicator data sets: CSV parsing (RFC 4180, tolerant), the table with GET filters by area,
// series and period, and the chart drawn on the server as SVG with a text alternative. The
// columns of the UN SDG global database export are recognised (SeriesDescription/SeriesCode,
// GeoAreaName, TimePeriod, Value, Units); any other CSV shows as a plain table. Pure;
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/kiosk/catalog.h"

namespace outpost::kiosk {

// Cells in one arena (a 100,000-row file costs its size plus 4 bytes a cell).
class CsvTable {
 public:
  std::size_t rows() const { return row_first_.empty() ? 0 : row_first_.size() - 1; }
  std::size_t width(std::size_t row) const { return row_first_[row + 1] - row_first_[row]; }
  // "" for a cell past the end of a short row.
  std::string_view cell(std::size_t row, std::size_t col) const;
  const std::vector<std::string>& header() const { return header_; }
  std::size_t ragged_rows() const { return ragged_; }  // rows whose width is not the header's
  bool truncated() const { return truncated_; }        // more rows than max_rows: rest dropped
  std::size_t bytes() const { return arena_.size() + ends_.size() * 4; }

  friend CsvTable parse_csv(std::string_view text, std::size_t max_rows);

 private:
  std::vector<std::string> header_;
  std::string arena_;
  std::vector<std::uint32_t> ends_;       // end of each cell in arena_
  std::vector<std::uint32_t> row_first_;  // first cell of each row, and a sentinel
  std::size_t ragged_ = 0;
  bool truncated_ = false;
};

// The first line is the header. Quoted fields may hold commas, quotes ("") and newlines; an
// unterminated quote runs to the end; invalid UTF-8 becomes U+FFFD; a UTF-8 BOM is skipped.
// Never fails (an empty text is a table without columns).
CsvTable parse_csv(std::string_view text, std::size_t max_rows = 1000000);

struct IndicatorQuery {
  std::string area, series, period;  // "" : all
  std::uint64_t page = 1;
};

struct IndicatorPage {
  std::string filters;  // the GET form
  std::string chart;    // <figure> with the SVG, or a paragraph saying why there is none
  std::string table;    // the table and its pager
  bool chart_drawn = false;
  std::size_t matching_rows = 0;
};

// action: the form's target (the page's own path, escaped by the caller? no: raw; escaped
// here). extra_query: "hl=fr" or "" kept on links.
IndicatorPage render_indicator(const CsvTable& table, const IndicatorQuery& q, const Messages& t,
                               const std::string& action, const std::string& extra_query);

// 1234.5 -> "1234.5", 0.000123 -> "0.000123" (at most 6 significant digits).
std::string format_number(double v);

}  // namespace outpost::kiosk

#include "outpost/kiosk/indicator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "outpost/kiosk/text.h"

namespace outpost::kiosk {

std::string_view CsvTable::cell(std::size_t row, std::size_t col) const {
  if (col >= width(row)) return {};
  const std::size_t k = row_first_[row] + col;
  const std::size_t begin = k == 0 ? 0 : ends_[k - 1];
  return std::string_view(arena_).substr(begin, ends_[k] - begin);
}

CsvTable parse_csv(std::string_view input, std::size_t max_rows) {
  CsvTable t;
  const std::string text = valid_utf8(input);
  std::string_view s = text;
  if (s.rfind("\xEF\xBB\xBF", 0) == 0) s.remove_prefix(3);
  // Cells longer than 4 GiB in all cannot be addressed: such a file is cut (and flagged).
  if (s.size() > 0xF0000000u) s = s.substr(0, 0xF0000000u), t.truncated_ = true;
  t.arena_.reserve(s.size());
  std::vector<std::string> header;
  bool in_header = true;
  std::size_t row_cells = 0;
  std::size_t i = 0;
  auto end_row = [&] {
    if (in_header) {
      in_header = false;
      for (std::size_t k = 0; k < row_cells; ++k) {
        const std::size_t b = k == 0 ? 0 : t.ends_[k - 1];
        t.header_.emplace_back(t.arena_.substr(b, t.ends_[k] - b));
      }
      t.arena_.clear();
      t.ends_.clear();
      t.row_first_.push_back(0);
    } else {
      // A blank line is no row.
      const std::size_t first = t.row_first_.back();
      if (row_cells == 1 && t.ends_.back() == (first == 0 ? 0 : t.ends_[first - 1])) {
        t.ends_.pop_back();
      } else {
        if (row_cells != t.header_.size()) ++t.ragged_;
        t.row_first_.push_back(static_cast<std::uint32_t>(t.ends_.size()));
      }
    }
    row_cells = 0;
  };
  while (i < s.size()) {
    if (!in_header && t.rows() >= max_rows) {
      t.truncated_ = true;
      break;
    }
    // One cell.
    if (s[i] == '"') {
      ++i;
      while (i < s.size()) {
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            t.arena_ += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        t.arena_ += s[i++];
      }
      // Anything between the closing quote and the separator is kept, as spreadsheets do.
      while (i < s.size() && s[i] != ',' && s[i] != '\n' && s[i] != '\r') t.arena_ += s[i++];
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '\n' && s[i] != '\r') t.arena_ += s[i++];
    }
    t.ends_.push_back(static_cast<std::uint32_t>(t.arena_.size()));
    ++row_cells;
    if (i < s.size() && s[i] == ',') {
      ++i;
      if (i == s.size()) {  // a trailing comma: one more empty cell
        t.ends_.push_back(static_cast<std::uint32_t>(t.arena_.size()));
        ++row_cells;
      }
      continue;
    }
    if (i < s.size() && s[i] == '\r') ++i;
    if (i < s.size() && s[i] == '\n') ++i;
    end_row();
  }
  if (row_cells > 0) end_row();
  if (t.row_first_.empty()) t.row_first_.push_back(0);
  t.arena_.shrink_to_fit();
  t.ends_.shrink_to_fit();
  return t;
}

std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

namespace {

constexpr std::size_t kPageRows = 50;
constexpr std::size_t kMaxBars = 40;
constexpr std::size_t kMaxLines = 6;
constexpr std::size_t kMaxPeriods = 200;
constexpr std::size_t kMaxOptions = 300;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (lower(header[i]) == name) return static_cast<int>(i);
    }
  }
  return -1;
}

bool parse_number(std::string_view s, double* out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty() || s.size() > 64) return false;
  const std::string copy(s);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return false;
  // strtod accepts hex and "inf"/"nan"; a data cell is decimal.
  for (char c : copy) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E')) {
      return false;
    }
  }
  *out = v;
  return true;
}

// Up to 5 round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  if (hi <= lo) hi = lo + 1;
  const double raw = (hi - lo) / 4;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> out;
  for (double v = std::floor(lo / step) * step; v <= hi + step * 1e-9 && out.size() < 8;
       v += step) {
    out.push_back(v);
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string shorten(std::string_view s, std::size_t max_chars) {
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++chars > max_chars) {
      return out + "\xE2\x80\xA6";
    }
    out += s[i];
  }
  return out;
}

struct Point {
  std::string area, period;
  double value;
};

const char* kColours[] = {"#1f4e96", "#b3261e", "#2e7d32", "#6a1b9a", "#8d5b00", "#00695c"};
const char* kDashes[] = {"", "6 3", "2 3", "8 3 2 3", "1 2", "10 4"};

// Horizontal bars, each with its label above it: readable on a 320-pixel screen, where the
// 320-unit view box is drawn at about its own size.
std::string bar_chart(const std::vector<Point>& pts, const std::string& title,
                      const std::string& units) {
  double lo = 0, hi = 0;
  for (const auto& p : pts) lo = std::min(lo, p.value), hi = std::max(hi, p.value);
  const auto tk = ticks(lo, hi);
  lo = std::min(lo, tk.front());
  hi = std::max(hi, tk.back());
  const double left = 8, right = 270, top = 4, label = 15, bar = 16, gap = 8;
  const double row = label + bar + gap;
  const double height = top + static_cast<double>(pts.size()) * row + 34;
  auto x = [&](double v) { return left + (v - lo) / (hi - lo) * (right - left); };
  std::string svg = "<svg viewBox=\"0 0 320 " + fmt(height) +
                    "\" role=\"img\" aria-labelledby=\"chart-t chart-d\" "
                    "xmlns=\"http://www.w3.org/2000/svg\">\n<title id=\"chart-t\">" +
                    escape_html(title) + "</title>\n";
  svg += "<desc id=\"chart-d\">";
  for (std::size_t i = 0; i < pts.size(); ++i) {
    svg += (i ? "; " : "") + escape_html(pts[i].area) + ": " + format_number(pts[i].value);
  }
  svg += units.empty() ? "" : " (" + escape_html(units) + ")";
  svg += "</desc>\n";
  const double axis = top + static_cast<double>(pts.size()) * row;
  for (double v : tk) {
    svg += "<line x1=\"" + fmt(x(v)) + "\" x2=\"" + fmt(x(v)) + "\" y1=\"" + fmt(top) + "\" y2=\"" +
           fmt(axis) + "\" stroke=\"#ccc\"/>\n";
    svg += "<text x=\"" + fmt(x(v)) + "\" y=\"" + fmt(axis + 13) +
           "\" text-anchor=\"middle\" font-size=\"11\">" + format_number(v) + "</text>\n";
  }
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const double y = top + static_cast<double>(i) * row;
    const double x0 = x(std::min(0.0, pts[i].value)), x1 = x(std::max(0.0, pts[i].value));
    svg += "<text x=\"" + fmt(left) + "\" y=\"" + fmt(y + 11) + "\" font-size=\"11\">" +
           escape_html(shorten(pts[i].area, 48)) + "</text>\n";
    svg += "<rect x=\"" + fmt(x0) + "\" y=\"" + fmt(y + label) + "\" width=\"" + fmt(x1 - x0) +
           "\" height=\"" + fmt(bar) + "\" fill=\"#1f4e96\"/>\n";
    svg += "<text x=\"" + fmt(x1 + 3) + "\" y=\"" + fmt(y + label + 12) + "\" font-size=\"11\">" +
           format_number(pts[i].value) + "</text>\n";
  }
  svg += "<text x=\"" + fmt((left + right) / 2) + "\" y=\"" + fmt(axis + 28) +
         "\" text-anchor=\"middle\" font-size=\"11\">" + escape_html(units) + "</text>\n";
  svg += "</svg>\n";
  return svg;
}

std::string line_chart(const std::vector<std::string>& areas,
                       const std::vector<std::string>& periods,
                       const std::map<std::pair<std::string, std::string>, double>& values,
                       const std::string& title, const std::string& units) {
  double lo = 0, hi = 0;
  bool first = true;
  for (const auto& [k, v] : values) {
    if (first) lo = hi = v, first = false;
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (lo > 0 && lo < hi / 2) lo = 0;
  const auto tk = ticks(lo, hi);
  lo = std::min(lo, tk.front());
  hi = std::max(hi, tk.back());
  const double left = 34, right = 310, top = 8, bottom = 170;
  const double legend = static_cast<double>(areas.size()) * 16;
  const double height = bottom + 40 + legend;
  auto x = [&](std::size_t i) {
    return periods.size() == 1 ? (left + right) / 2
                               : left + static_cast<double>(i) * (right - left) /
                                            static_cast<double>(periods.size() - 1);
  };
  auto y = [&](double v) { return bottom - (v - lo) / (hi - lo) * (bottom - top); };
  std::string svg = "<svg viewBox=\"0 0 320 " + fmt(height) +
                    "\" role=\"img\" aria-labelledby=\"chart-t chart-d\" "
                    "xmlns=\"http://www.w3.org/2000/svg\">\n<title id=\"chart-t\">" +
                    escape_html(title) + "</title>\n<desc id=\"chart-d\">";
  for (std::size_t a = 0; a < areas.size(); ++a) {
    std::vector<std::pair<std::string, double>> series;
    for (const auto& p : periods) {
      auto it = values.find({areas[a], p});
      if (it != values.end()) series.emplace_back(p, it->second);
    }
    if (series.empty()) continue;
    auto [mn, mx] = std::minmax_element(series.begin(), series.end(),
                                        [](auto& l, auto& r) { return l.second < r.second; });
    svg += (a ? "; " : "") + escape_html(areas[a]) + ": " + format_number(series.front().second) +
           " (" + escape_html(series.front().first) + ") \xE2\x86\x92 " +
           format_number(series.back().second) + " (" + escape_html(series.back().first) +
           "), min " + format_number(mn->second) + ", max " + format_number(mx->second);
  }
  svg += units.empty() ? "" : " (" + escape_html(units) + ")";
  svg += "</desc>\n";
  for (double v : tk) {
    svg += "<line x1=\"" + fmt(left) + "\" x2=\"" + fmt(right) + "\" y1=\"" + fmt(y(v)) +
           "\" y2=\"" + fmt(y(v)) + "\" stroke=\"#ccc\"/>\n<text x=\"" + fmt(left - 6) + "\" y=\"" +
           fmt(y(v) + 4) + "\" text-anchor=\"end\" font-size=\"11\">" + format_number(v) +
           "</text>\n";
  }
  const std::size_t every = std::max<std::size_t>(1, periods.size() / 5);
  for (std::size_t i = 0; i < periods.size(); i += every) {
    svg += "<text x=\"" + fmt(x(i)) + "\" y=\"" + fmt(bottom + 16) +
           "\" text-anchor=\"middle\" font-size=\"11\">" + escape_html(shorten(periods[i], 10)) +
           "</text>\n";
  }
  svg += "<text x=\"" + fmt(left) + "\" y=\"" + fmt(bottom + 32) + "\" font-size=\"11\">" +
         escape_html(units) + "</text>\n";
  for (std::size_t a = 0; a < areas.size(); ++a) {
    std::string points;
    for (std::size_t i = 0; i < periods.size(); ++i) {
      auto it = values.find({areas[a], periods[i]});
      if (it == values.end()) continue;
      points += fmt(x(i)) + "," + fmt(y(it->second)) + " ";
      svg += "<circle cx=\"" + fmt(x(i)) + "\" cy=\"" + fmt(y(it->second)) + "\" r=\"3\" fill=\"" +
             kColours[a] + "\"/>\n";
    }
    svg += std::string("<polyline fill=\"none\" stroke-width=\"2\" stroke=\"") + kColours[a] +
           "\"" + (kDashes[a][0] ? std::string(" stroke-dasharray=\"") + kDashes[a] + "\"" : "") +
           " points=\"" + points + "\"/>\n";
    const double ly = bottom + 46 + static_cast<double>(a) * 16;
    svg += std::string("<line x1=\"") + fmt(left) + "\" x2=\"" + fmt(left + 30) + "\" y1=\"" +
           fmt(ly - 4) + "\" y2=\"" + fmt(ly - 4) + "\" stroke-width=\"2\" stroke=\"" +
           kColours[a] + "\"" +
           (kDashes[a][0] ? std::string(" stroke-dasharray=\"") + kDashes[a] + "\"" : "") +
           "/>\n<text x=\"" + fmt(left + 36) + "\" y=\"" + fmt(ly) + "\" font-size=\"11\">" +
           escape_html(shorten(areas[a], 40)) + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

std::string select(const std::string& id, const std::string& label, const std::string& name,
                   const std::set<std::string>& options, const std::string& chosen,
                   const std::string& all) {
  std::string out = "<p><label for=\"" + id + "\">" + escape_html(label) + "</label>\n";
  if (options.size() > kMaxOptions) {
    return out + "<input id=\"" + id + "\" name=\"" + name + "\" value=\"" + escape_html(chosen) +
           "\"></p>\n";
  }
  out += "<select id=\"" + id + "\" name=\"" + name + "\">\n<option value=\"\">" +
         escape_html(all) + "</option>\n";
  for (const auto& o : options) {
    out += "<option" + std::string(o == chosen ? " selected" : "") + " value=\"" + escape_html(o) +
           "\">" + escape_html(shorten(o, 60)) + "</option>\n";
  }
  return out + "</select></p>\n";
}

}  // namespace

IndicatorPage render_indicator(const CsvTable& table, const IndicatorQuery& q, const Messages& t,
                               const std::string& action, const std::string& extra_query) {
  IndicatorPage page;
  const auto& h = table.header();
  const int c_series = find_column(h, {"seriesdescription", "series", "seriescode", "indicator"});
  const int c_area = find_column(h, {"geoareaname", "area", "country", "region", "geoareacode"});
  const int c_period = find_column(h, {"timeperiod", "period", "year", "date"});
  const int c_value = find_column(h, {"value", "obs_value"});
  const int c_units = find_column(h, {"units", "unit", "unit_measure"});
  auto cell = [&](std::size_t r, int c) {
    return c < 0 ? std::string_view() : table.cell(r, static_cast<std::size_t>(c));
  };

  // Options and the rows that pass the filters.
  std::set<std::string> areas, series, periods;
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < table.rows(); ++r) {
    const std::string_view a = cell(r, c_area), s = cell(r, c_series), p = cell(r, c_period);
    if (c_area >= 0 && areas.size() <= kMaxOptions) areas.emplace(a);
    if (c_series >= 0 && series.size() <= kMaxOptions) series.emplace(s);
    if (c_period >= 0 && periods.size() <= kMaxOptions) periods.emplace(p);
    if (!q.area.empty() && a != q.area) continue;
    if (!q.series.empty() && s != q.series) continue;
    if (!q.period.empty() && p != q.period) continue;
    rows.push_back(r);
  }
  page.matching_rows = rows.size();

  const std::string all = t("All");
  if (c_area >= 0 || c_series >= 0 || c_period >= 0) {
    page.filters = "<form method=\"get\" action=\"" + escape_html(action) +
                   "\" class=\"filters\">\n<fieldset><legend>" + escape_html(t("Filter the data")) +
                   "</legend>\n";
    if (c_series >= 0)
      page.filters += select("f-series", t("Series"), "series", series, q.series, all);
    if (c_area >= 0) page.filters += select("f-area", t("Area"), "area", areas, q.area, all);
    if (c_period >= 0) {
      page.filters += select("f-period", t("Period"), "period", periods, q.period, all);
    }
    if (extra_query.rfind("hl=", 0) == 0) {
      page.filters += "<input type=\"hidden\" name=\"hl\" value=\"" +
                      escape_html(extra_query.substr(3)) + "\">\n";
    }
    page.filters += "<p><button type=\"submit\">" + escape_html(t("Show")) +
                    "</button></p>\n</fieldset>\n</form>\n";
  }

  // The chart: one series (the chosen one, else the first), by area or over the periods.
  std::string why;
  if (c_value < 0) {
    why = t("No chart: the data has no Value column.");
  } else if (rows.empty()) {
    why = t("No chart: no rows match the filters.");
  } else {
    const std::string chosen = q.series.empty() ? std::string(cell(rows[0], c_series)) : q.series;
    std::vector<Point> pts;
    std::size_t non_numeric = 0;
    std::string units;
    for (std::size_t r : rows) {
      if (c_series >= 0 && cell(r, c_series) != chosen) continue;
      double v;
      if (!parse_number(cell(r, c_value), &v)) {
        ++non_numeric;
        continue;
      }
      if (units.empty()) units = std::string(cell(r, c_units));
      pts.push_back({std::string(cell(r, c_area)), std::string(cell(r, c_period)), v});
    }
    std::vector<std::string> chart_areas, chart_periods;
    std::map<std::pair<std::string, std::string>, double> values;
    for (const auto& p : pts) {
      if (std::find(chart_areas.begin(), chart_areas.end(), p.area) == chart_areas.end()) {
        if (chart_areas.size() <= kMaxBars) chart_areas.push_back(p.area);
      }
      if (std::find(chart_periods.begin(), chart_periods.end(), p.period) == chart_periods.end()) {
        if (chart_periods.size() <= kMaxPeriods) chart_periods.push_back(p.period);
      }
      values[{p.area, p.period}] = p.value;
    }
    std::sort(chart_periods.begin(), chart_periods.end());
    const std::string title = chosen.empty() ? t("Chart of the values") : chosen;
    std::string svg;
    if (pts.empty()) {
      why = t("No chart: the values are not numbers. The table shows them as published.");
    } else if (chart_periods.size() <= 1) {
      if (pts.size() > kMaxBars) {
        why = t("No chart: too many values for one chart. Choose an area or a period.");
      } else {
        svg = bar_chart(pts, title, units);
      }
    } else if (chart_areas.size() > kMaxLines || chart_periods.size() > kMaxPeriods) {
      why = t("No chart: too many values for one chart. Choose an area or a period.");
    } else {
      svg = line_chart(chart_areas, chart_periods, values, title, units);
    }
    if (!svg.empty()) {
      page.chart_drawn = true;
      page.chart = "<figure class=\"chart\">\n" + svg + "<figcaption>" + escape_html(title);
      if (non_numeric > 0) {
        page.chart +=
            " \xE2\x80\x94 " +
            escape_html(t.plural("{count} value is not a number and is not drawn.",
                                 "{count} values are not numbers and are not drawn.", non_numeric));
      }
      page.chart += "</figcaption>\n</figure>\n";
    }
  }
  if (!page.chart_drawn) page.chart = "<p class=\"note\">" + escape_html(why) + "</p>\n";

  // The table, a page at a time.
  std::vector<int> cols;
  std::vector<std::string> names;
  if (c_area >= 0 && c_period >= 0 && c_value >= 0) {
    if (c_series >= 0 && q.series.empty()) cols.push_back(c_series), names.push_back(t("Series"));
    cols.push_back(c_area), names.push_back(t("Area"));
    cols.push_back(c_period), names.push_back(t("Period"));
    cols.push_back(c_value), names.push_back(t("Value"));
    if (c_units >= 0) cols.push_back(c_units), names.push_back(t("Units"));
  } else {
    for (std::size_t i = 0; i < h.size() && i < 20; ++i) {
      cols.push_back(static_cast<int>(i));
      names.push_back(h[i]);
    }
  }
  const std::size_t pages = std::max<std::size_t>(1, (rows.size() + kPageRows - 1) / kPageRows);
  const std::size_t pg = static_cast<std::size_t>(std::clamp<std::uint64_t>(q.page, 1, pages));
  std::string& out = page.table;
  out =
      "<div class=\"scroll\" role=\"region\" aria-labelledby=\"table-caption\" tabindex=\"0\">\n"
      "<table>\n<caption id=\"table-caption\">" +
      escape_html(t.plural("{count} row", "{count} rows", rows.size()));
  if (pages > 1) {
    out +=
        ", " + escape_html(fill(t("page {page} of {pages}"),
                                {{"page", std::to_string(pg)}, {"pages", std::to_string(pages)}}));
  }
  out += "</caption>\n<thead><tr>";
  for (const auto& n : names) out += "<th scope=\"col\">" + escape_html(n) + "</th>";
  out += "</tr></thead>\n<tbody>\n";
  for (std::size_t i = (pg - 1) * kPageRows; i < rows.size() && i < pg * kPageRows; ++i) {
    out += "<tr>";
    for (int c : cols) {
      const bool num = c == c_value;
      out += num ? "<td class=\"num\">" : "<td>";
      out += escape_html(cell(rows[i], c));
      out += "</td>";
    }
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n</div>\n";
  if (table.ragged_rows() > 0) {
    out +=
        "<p class=\"note\">" +
        escape_html(t.plural("{count} row of the file does not have as many cells as the header.",
                             "{count} rows of the file do not have as many cells as the header.",
                             table.ragged_rows())) +
        "</p>\n";
  }
  if (pages > 1) {
    auto link = [&](std::size_t p) {
      std::string url = action + "?page=" + std::to_string(p);
      if (!q.series.empty()) url += "&series=" + url_encode(q.series);
      if (!q.area.empty()) url += "&area=" + url_encode(q.area);
      if (!q.period.empty()) url += "&period=" + url_encode(q.period);
      if (!extra_query.empty()) url += "&" + extra_query;
      return escape_html(url);
    };
    out += "<nav class=\"pager\" aria-label=\"" + escape_html(t("Pages of the table")) + "\">";
    if (pg > 1)
      out +=
          "<a rel=\"prev\" href=\"" + link(pg - 1) + "\">" + escape_html(t("Previous")) + "</a> ";
    if (pg < pages)
      out += "<a rel=\"next\" href=\"" + link(pg + 1) + "\">" + escape_html(t("Next")) + "</a>";
    out += "</nav>\n";
  }
  return page;
}

}  // namespace outpost::kiosk

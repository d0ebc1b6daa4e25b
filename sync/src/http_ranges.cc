#include "http_ranges.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace outpost::sync::http_internal {

namespace {

constexpr std::size_t kMaxPreamble = 1024;
constexpr std::size_t kMaxEpilogue = 1024;
constexpr std::size_t kMaxPartHeaders = 4096;

bool parse_u64(std::string_view s, std::uint64_t* v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status broken(const std::string& why) {
  return Status::Corruption("malformed multipart/byteranges answer: " + why);
}

}  // namespace

std::vector<Extent> coalesce(const std::vector<ByteRange>& ranges, std::uint64_t gap) {
  std::vector<Extent> sorted;
  sorted.reserve(ranges.size());
  for (const ByteRange& r : ranges) {
    if (r.length > 0) sorted.push_back({r.offset, r.offset + r.length});
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  std::vector<Extent> out;
  for (const Extent& e : sorted) {
    if (!out.empty() && e.begin <= out.back().end + gap) {
      out.back().end = std::max(out.back().end, e.end);
    } else {
      out.push_back(e);
    }
  }
  return out;
}

std::optional<ContentRange> parse_content_range(std::string_view value) {
  value = trim(value);
  if (!iequals_prefix(value, "bytes ")) return std::nullopt;
  value.remove_prefix(6);
  value = trim(value);
  std::size_t dash = value.find('-');
  std::size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return std::nullopt;
  }
  ContentRange cr;
  if (!parse_u64(value.substr(0, dash), &cr.first) ||
      !parse_u64(value.substr(dash + 1, slash - dash - 1), &cr.last) || cr.last < cr.first) {
    return std::nullopt;
  }
  std::string_view total = value.substr(slash + 1);
  if (total != "*") {
    std::uint64_t t = 0;
    if (!parse_u64(total, &t) || t <= cr.last) return std::nullopt;
    cr.total = t;
  }
  return cr;
}

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  if (!iequals_prefix(content_type, "multipart/byteranges")) return std::nullopt;
  std::string_view rest = content_type.substr(20);
  while (!rest.empty()) {
    std::size_t semi = rest.find(';');
    std::string_view param = trim(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    if (!iequals_prefix(param, "boundary=")) continue;
    std::string_view b = param.substr(9);
    if (b.size() >= 2 && b.front() == '"' && b.back() == '"') b = b.substr(1, b.size() - 2);
    if (b.empty() || b.size() > 70) return std::nullopt;
    return std::string(b);
  }
  return std::nullopt;
}

MultipartParser::MultipartParser(std::string boundary, std::vector<Extent> asked,
                                 std::function<void(std::uint64_t, ByteView)> deliver)
    : delimiter_("--" + boundary),
      asked_(std::move(asked)),
      seen_(asked_.size(), false),
      deliver_(std::move(deliver)) {}

Status MultipartParser::feed(ByteView data) {
  std::size_t i = 0;
  while (i < data.size()) {
    if (state_ == State::kBody) {
      std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>(part_left_, static_cast<std::uint64_t>(data.size() - i)));
      deliver_(part_offset_, data.subspan(i, n));
      part_offset_ += n;
      part_left_ -= n;
      i += n;
      if (part_left_ == 0) state_ = State::kAfterBody;
      continue;
    }
    if (state_ == State::kEpilogue) {
      epilogue_ += data.size() - i;
      if (epilogue_ > kMaxEpilogue) return broken("bytes after the closing boundary");
      return Status::Ok();
    }
    // Framing and part headers are small: take them a byte at a time.
    buf_.push_back(static_cast<char>(data[i++]));
    OUTPOST_RETURN_IF_ERROR(advance());
  }
  return Status::Ok();
}

Status MultipartParser::advance() {
  switch (state_) {
    case State::kPreamble: {
      std::size_t d = delimiter_.size();
      if (buf_.size() >= d && buf_.compare(buf_.size() - d, d, delimiter_) == 0 &&
          (buf_.size() == d || buf_[buf_.size() - d - 1] == '\n')) {
        buf_.clear();
        state_ = State::kAfterBoundary;
      } else if (buf_.size() > kMaxPreamble + d) {
        return broken("no boundary '" + delimiter_.substr(2) + "' where the body starts");
      }
      return Status::Ok();
    }
    case State::kAfterBoundary: {
      if (buf_ == "--") {  // missing parts are allowed: the caller asks for them again
        buf_.clear();
        state_ = State::kEpilogue;
        return Status::Ok();
      }
      if (buf_.size() >= 2 && buf_.compare(buf_.size() - 2, 2, "\r\n") == 0) {
        for (std::size_t i = 0; i + 2 < buf_.size(); ++i) {
          if (buf_[i] != ' ' && buf_[i] != '\t') return broken("text after a boundary");
        }
        buf_.clear();
        state_ = State::kHeaders;
        return Status::Ok();
      }
      if ((buf_.size() == 2 && buf_[0] == '-') || buf_.size() > 64) {
        return broken("text after a boundary");
      }
      return Status::Ok();
    }
    case State::kHeaders: {
      if (buf_ == "\r\n") return broken("a part without headers");
      if (buf_.size() >= 4 && buf_.compare(buf_.size() - 4, 4, "\r\n\r\n") == 0) {
        return start_part();
      }
      if (buf_.size() > kMaxPartHeaders) return broken("part headers too long");
      return Status::Ok();
    }
    case State::kAfterBody: {
      std::string expected = "\r\n" + delimiter_;
      if (expected.compare(0, buf_.size(), buf_) != 0) {
        return broken("a part longer than its Content-Range, or a wrong boundary");
      }
      if (buf_.size() == expected.size()) {
        buf_.clear();
        state_ = State::kAfterBoundary;
      }
      return Status::Ok();
    }
    case State::kBody:
    case State::kEpilogue: break;
  }
  return Status::Ok();
}

Status MultipartParser::start_part() {
  std::optional<ContentRange> cr;
  std::string_view rest(buf_);
  while (!rest.empty()) {
    std::size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    if (iequals_prefix(line, "content-range:")) {
      if (cr) return broken("a part with two Content-Range headers");
      cr = parse_content_range(line.substr(14));
      if (!cr) return broken("unreadable Content-Range '" + std::string(line) + "'");
    }
  }
  if (!cr) return broken("a part without Content-Range");
  std::size_t match = asked_.size();
  for (std::size_t i = 0; i < asked_.size(); ++i) {
    if (asked_[i].begin == cr->first && asked_[i].end == cr->last + 1) match = i;
  }
  if (match == asked_.size()) {
    return broken("a part for bytes " + std::to_string(cr->first) + "-" + std::to_string(cr->last) +
                  ", which were not asked for");
  }
  if (seen_[match]) return broken("the same range sent twice");
  seen_[match] = true;
  part_offset_ = cr->first;
  part_left_ = cr->last - cr->first + 1;
  buf_.clear();
  state_ = State::kBody;
  return Status::Ok();
}

}  // namespace outpost::sync::http_internal

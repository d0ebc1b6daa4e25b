#include "outpost/base/size.h"

#include <cctype>
#include <limits>
#include <string>

namespace outpost {

Result<std::uint64_t> parse_byte_size(std::string_view text) {
  const auto bad = [&] {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a number of bytes: write e.g. \"500k\", \"50M\", "
                                   "\"1G\" or 0");
  };
  const auto digit = [&](std::size_t k) {
    return k < text.size() && std::isdigit(static_cast<unsigned char>(text[k])) != 0;
  };
  if (!digit(0)) return bad();
  // 128 bits: 20 digits, times a unit of up to 10^12, cannot wrap before the range check.
  __extension__ using Wide = unsigned __int128;
  constexpr Wide kMax = std::numeric_limits<std::uint64_t>::max();
  std::size_t i = 0;
  Wide whole = 0;
  for (; digit(i); ++i) {
    whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
    if (whole > kMax) return bad();
  }
  Wide fraction = 0, scale = 1;  // fraction / scale, up to nine decimals
  if (i < text.size() && text[i] == '.') {
    if (!digit(++i)) return bad();
    for (; digit(i); ++i) {
      if (scale >= 1'000'000'000) continue;
      fraction = fraction * 10 + static_cast<unsigned>(text[i] - '0');
      scale *= 10;
    }
  }
  std::string unit(text.substr(i));
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.size() >= 2 && unit.back() == 'b' && unit[unit.size() - 2] != 'b') {
    unit.pop_back();  // "kb" is "k", "kib" is "ki"
  }
  std::uint64_t scale_of_unit = 0;
  if (unit.empty() || unit == "b")
    scale_of_unit = 1;
  else if (unit == "k")
    scale_of_unit = 1000;
  else if (unit == "m")
    scale_of_unit = 1000'000;
  else if (unit == "g")
    scale_of_unit = 1000'000'000;
  else if (unit == "t")
    scale_of_unit = 1000'000'000'000;
  else if (unit == "ki")
    scale_of_unit = std::uint64_t{1} << 10;
  else if (unit == "mi")
    scale_of_unit = std::uint64_t{1} << 20;
  else if (unit == "gi")
    scale_of_unit = std::uint64_t{1} << 30;
  else
    return bad();
  const Wide bytes = whole * scale_of_unit + fraction * scale_of_unit / scale;
  if (bytes > kMax) return bad();
  return static_cast<std::uint64_t>(bytes);
}

}  // namespace outpost

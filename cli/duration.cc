#include "cli/duration.h"

#include <cctype>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal::cli {
namespace {

absl::Status Invalid(const std::string& text) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid duration \"", text,
      "\": use a number with a unit (ns, us, ms, s, m, h, d), e.g. 90d, 2160h, 1h30m or 45s"));
}

// Length of the unit at the start of `rest`, and its size; 0 if there is none.
size_t MatchUnit(const std::string& rest, absl::Duration* unit) {
  struct Unit {
    const char* name;
    absl::Duration size;
  };
  // Longer names first so that "ms" is not read as "m".
  static const Unit kUnits[] = {
      {"ns", absl::Nanoseconds(1)},
      {"us", absl::Microseconds(1)},
      {"\xc2\xb5s", absl::Microseconds(1)},  // µs
      {"ms", absl::Milliseconds(1)},
      {"s", absl::Seconds(1)},
      {"m", absl::Minutes(1)},
      {"h", absl::Hours(1)},
      {"d", absl::Hours(24)},
  };
  for (const Unit& u : kUnits) {
    const size_t n = std::char_traits<char>::length(u.name);
    if (rest.compare(0, n, u.name) == 0) {
      *unit = u.size;
      return n;
    }
  }
  return 0;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(const std::string& text) {
  if (text == "0") return absl::ZeroDuration();
  if (text.empty()) return Invalid(text);
  absl::Duration total = absl::ZeroDuration();
  size_t i = 0;
  while (i < text.size()) {
    // A number: digits, optionally a fraction.
    const size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    const size_t int_end = i;
    size_t frac_end = i;
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
      frac_end = i;
    }
    if (int_end == start && frac_end <= int_end + 1) return Invalid(text);  // no digits at all
    absl::Duration unit;
    const size_t unit_len = MatchUnit(text.substr(i), &unit);
    if (unit_len == 0) return Invalid(text);
    i += unit_len;
    const std::string whole = text.substr(start, int_end - start);
    if (whole.size() > 15) return Invalid(text);  // would overflow any useful range
    const double whole_value = whole.empty() ? 0 : std::stod(whole);
    total += whole_value * unit;
    if (frac_end > int_end + 1) {
      const std::string frac = text.substr(int_end + 1, frac_end - int_end - 1);
      total += std::stod("0." + frac) * unit;
    }
  }
  return total;
}

std::string HumanDuration(absl::Duration d) {
  const int64_t seconds = absl::ToInt64Seconds(d);
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return absl::StrFormat("%d seconds", seconds);
  const int64_t minutes = absl::ToInt64Minutes(d);
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return absl::StrFormat("%d minutes", minutes);
  const int64_t hours = std::llround(absl::ToDoubleHours(d));  // nearest, as docker
  if (hours == 1) return "About an hour";
  if (hours < 48) return absl::StrFormat("%d hours", hours);
  if (hours < 24 * 7 * 2) return absl::StrFormat("%d days", hours / 24);
  if (hours < 24 * 30 * 2) return absl::StrFormat("%d weeks", hours / 24 / 7);
  if (hours < 24 * 365 * 2) return absl::StrFormat("%d months", hours / 24 / 30);
  return absl::StrFormat("%d years", absl::ToInt64Hours(d) / 24 / 365);
}

std::string GoDurationString(absl::Duration d) {
  if (d == absl::ZeroDuration()) return "0s";
  std::string sign;
  if (d < absl::ZeroDuration()) {
    sign = "-";
    d = -d;
  }
  // A number of `unit`s with its fraction, trailing zeros dropped: "1.5", "30".
  auto decimal = [](int64_t value, int64_t unit) {
    std::string out = absl::StrCat(value / unit);
    int64_t frac = value % unit;
    if (frac == 0) return out;
    std::string digits = absl::StrCat(unit + frac).substr(1);  // zero-padded
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    return absl::StrCat(out, ".", digits);
  };
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  if (ns < 1000) return absl::StrCat(sign, ns, "ns");
  if (ns < 1000000) return absl::StrCat(sign, decimal(ns, 1000), "\xc2\xb5s");  // µs
  if (ns < 1000000000) return absl::StrCat(sign, decimal(ns, 1000000), "ms");
  const int64_t hours = ns / (3600 * int64_t{1000000000});
  const int64_t minutes = ns / (60 * int64_t{1000000000}) % 60;
  const int64_t sec_ns = ns % (60 * int64_t{1000000000});
  std::string out = sign;
  if (hours > 0) absl::StrAppend(&out, hours, "h");
  if (hours > 0 || minutes > 0) absl::StrAppend(&out, minutes, "m");
  absl::StrAppend(&out, decimal(sec_ns, 1000000000), "s");
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

}  // namespace shoal::cli

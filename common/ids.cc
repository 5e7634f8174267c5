#include "common/ids.h"

#include <sys/random.h>

#include <array>
#include <cstdint>
#include <stdexcept>

namespace shoal {

std::string NewId() {
  std::array<uint8_t, 16> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) throw std::runtime_error("getrandom failed");
    got += static_cast<size_t>(n);
  }
  // 128 bits fit in 25 base36 digits (36^25 > 2^129). Repeated division of the big-endian number.
  std::string out(kIdLength, '0');
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (size_t pos = kIdLength; pos-- > 0;) {
    uint32_t rem = 0;
    for (uint8_t& b : bytes) {
      const uint32_t cur = (rem << 8) | b;
      b = static_cast<uint8_t>(cur / 36);
      rem = cur % 36;
    }
    out[pos] = kDigits[rem];
  }
  return out;
}

}  // namespace shoal

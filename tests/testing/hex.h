// Hex helpers for the wire-format tests: golden bytes and hand-made bodies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace yard::testing {

// "59 44 01 01": lower-case bytes separated by spaces.
inline std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0) out.push_back(' ');
    const auto b = static_cast<uint8_t>(bytes[i]);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

// Accepts "a0b1", "a0 b1" or "A0B1" (spaces, tabs and CRs are skipped). Returns false on any
// other character or an odd number of digits.
inline bool FromHex(std::string_view hex, std::string* out) {
  out->clear();
  int nibbles = 0;
  unsigned byte = 0;
  for (char c : hex) {
    unsigned v;
    if (c >= '0' && c <= '9') {
      v = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      v = static_cast<unsigned>(c - 'A' + 10);
    } else if (c == ' ' || c == '\t' || c == '\r') {
      continue;
    } else {
      return false;
    }
    byte = byte * 16 + v;
    if (++nibbles == 2) {
      out->push_back(static_cast<char>(byte));
      nibbles = 0;
      byte = 0;
    }
  }
  return nibbles == 0;
}

// FromHex for literals in tests; aborts the test binary on a malformed literal.
inline std::string Unhex(std::string_view hex) {
  std::string out;
  if (!FromHex(hex, &out)) __builtin_trap();
  return out;
}

}  // namespace yard::testing

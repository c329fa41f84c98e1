//===- FloatConversionTest.cpp - bf16 / f16 conversion tests --------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Expected values are computed by hand from the bit layouts: bf16 is the top
// half of a float; f16 has 5 exponent bits (bias 15) and 10 mantissa bits.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/SafeTensors.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace jamba::ckpt;

namespace {

float fromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint32_t toBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(BF16Test, ExactValues) {
  EXPECT_EQ(f32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(f32ToBf16(-2.0f), 0xC000);
  EXPECT_EQ(f32ToBf16(0.0f), 0x0000);
  EXPECT_EQ(f32ToBf16(-0.0f), 0x8000);
  EXPECT_EQ(bf16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(bf16ToF32(0xC049), -3.140625f);
  EXPECT_TRUE(std::signbit(bf16ToF32(0x8000)));
}

TEST(BF16Test, RoundsHalfToEven) {
  // 1 + 2^-8 is halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81).
  EXPECT_EQ(f32ToBf16(fromBits(0x3F808000)), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 0x3F81 (odd) and 0x3F82 (even).
  EXPECT_EQ(f32ToBf16(fromBits(0x3F818000)), 0x3F82);
  // Just above and below the halfway point.
  EXPECT_EQ(f32ToBf16(fromBits(0x3F808001)), 0x3F81);
  EXPECT_EQ(f32ToBf16(fromBits(0x3F807FFF)), 0x3F80);
  // pi = 0x40490FDB -> 0x4049 (the dropped half 0x0FDB is below 0x8000).
  EXPECT_EQ(f32ToBf16(fromBits(0x40490FDB)), 0x4049);
  // Mantissa carry into the exponent: 0x3FFF8000 (tie, odd) -> 2.0.
  EXPECT_EQ(f32ToBf16(fromBits(0x3FFF8000)), 0x4000);
}

TEST(BF16Test, InfinityAndOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32ToBf16(inf), 0x7F80);
  EXPECT_EQ(f32ToBf16(-inf), 0xFF80);
  // FLT_MAX lies above the midpoint between bf16 max (0x7F7F) and 2^128.
  EXPECT_EQ(f32ToBf16(fromBits(0x7F7FFFFF)), 0x7F80);
  EXPECT_EQ(f32ToBf16(fromBits(0x7F7F7FFF)), 0x7F7F);
  EXPECT_EQ(bf16ToF32(0x7F80), inf);
  EXPECT_EQ(bf16ToF32(0xFF80), -inf);
}

TEST(BF16Test, NaNIsPreserved) {
  EXPECT_EQ(f32ToBf16(fromBits(0x7FC00000)), 0x7FC0);
  EXPECT_EQ(f32ToBf16(fromBits(0xFFC00000)), 0xFFC0);
  // A NaN whose payload is only in the low 16 bits must not become infinity.
  EXPECT_EQ(f32ToBf16(fromBits(0x7F800001)), 0x7FC0);
  // Signalling NaN with a high payload: payload kept, quiet bit set.
  EXPECT_EQ(f32ToBf16(fromBits(0x7FA00000)), 0x7FE0);
  EXPECT_TRUE(std::isnan(bf16ToF32(0x7FC1)));
}

TEST(BF16Test, BytesMatchTheScalarConversion) {
  // Every sign, exponent and high mantissa, with low halves at and around
  // the rounding ties, and NaN payloads in the low half only.
  std::vector<float> values;
  for (uint32_t high = 0; high <= 0xFFFF; ++high)
    for (uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu})
      values.push_back(fromBits(high << 16 | low));
  // An odd start, so that the bytes are not 2-byte aligned.
  std::vector<uint8_t> bytes(2 * values.size() + 1, 0xAB);
  f32ToBf16Bytes(values.data(), values.size(), bytes.data() + 1);
  EXPECT_EQ(bytes[0], 0xAB);
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t got =
        static_cast<uint16_t>(bytes[1 + 2 * i] | bytes[2 + 2 * i] << 8);
    ASSERT_EQ(got, f32ToBf16(values[i]))
        << "bits " << std::hex << toBits(values[i]);
  }
}

TEST(BF16Test, Subnormals) {
  // bf16 keeps float's exponent range, so float subnormals round in place.
  EXPECT_EQ(f32ToBf16(fromBits(0x00000001)), 0x0000);
  EXPECT_EQ(f32ToBf16(fromBits(0x00018000)), 0x0002); // Tie, odd -> up.
  EXPECT_EQ(f32ToBf16(fromBits(0x00008000)), 0x0000); // Tie, even -> down.
  EXPECT_EQ(toBits(bf16ToF32(0x0001)), 0x00010000u);  // 2^-133.
}

TEST(BF16Test, EveryValueRoundTrips) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    float f = bf16ToF32(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16ToF32(f32ToBf16(f))));
      continue;
    }
    ASSERT_EQ(f32ToBf16(f), b);
  }
}

TEST(F16Test, ExactValues) {
  EXPECT_EQ(f32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(f32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(f32ToF16(0.0f), 0x0000);
  EXPECT_EQ(f32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(f32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(f16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(f16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16ToF32(0x3555), 0.333251953125f); // (1 + 341/1024) / 4.
  EXPECT_TRUE(std::signbit(f16ToF32(0x8000)));
}

TEST(F16Test, RoundsHalfToEven) {
  // 1 + 2^-11 is halfway between 0x3C00 (even) and 0x3C01.
  EXPECT_EQ(f32ToF16(fromBits(0x3F801000)), 0x3C00);
  // 1 + 3 * 2^-11 is halfway between 0x3C01 (odd) and 0x3C02.
  EXPECT_EQ(f32ToF16(fromBits(0x3F803000)), 0x3C02);
  EXPECT_EQ(f32ToF16(fromBits(0x3F801001)), 0x3C01);
  // 1/3 = 0x3EAAAAAB -> 0x3555 (dropped bits below half).
  EXPECT_EQ(f32ToF16(1.0f / 3.0f), 0x3555);
}

TEST(F16Test, InfinityAndOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  // 65520 is halfway between 65504 (odd mantissa) and 65536 (= infinity).
  EXPECT_EQ(f32ToF16(65519.996f), 0x7BFF);
  EXPECT_EQ(f32ToF16(65520.0f), 0x7C00);
  EXPECT_EQ(f32ToF16(1e6f), 0x7C00);
  EXPECT_EQ(f32ToF16(inf), 0x7C00);
  EXPECT_EQ(f32ToF16(-inf), 0xFC00);
  EXPECT_EQ(f16ToF32(0x7C00), inf);
  EXPECT_EQ(f16ToF32(0xFC00), -inf);
}

TEST(F16Test, NaNIsPreserved) {
  EXPECT_EQ(f32ToF16(fromBits(0x7FC00000)), 0x7E00);
  EXPECT_EQ(f32ToF16(fromBits(0xFFC00000)), 0xFE00);
  EXPECT_EQ(f32ToF16(fromBits(0x7F800001)), 0x7E00); // Low payload: stays NaN.
  EXPECT_TRUE(std::isnan(f16ToF32(0x7E00)));
  EXPECT_TRUE(std::isnan(f16ToF32(0x7C01)));
}

TEST(F16Test, Subnormals) {
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -14)), 0x0400); // Smallest normal.
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -24)), 0x0001); // Smallest subnormal.
  EXPECT_EQ(f32ToF16(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(f32ToF16(std::ldexp(1023.0f, -24)), 0x03FF); // Largest subnormal.
  // Ties: 2^-25 is halfway between 0 and 2^-24 -> 0 (even).
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32ToF16(std::ldexp(3.0f, -26)), 0x0001); // 0.75 ulp -> 1.
  EXPECT_EQ(f32ToF16(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulp, tie -> 2.
  EXPECT_EQ(f32ToF16(std::ldexp(5.0f, -25)), 0x0002); // 2.5 ulp, tie -> 2.
  // 1023.5 ulp is a tie between 0x03FF (odd) and 0x0400 -> the normal.
  EXPECT_EQ(f32ToF16(std::ldexp(2047.0f, -25)), 0x0400);
  // Far below: zero with the sign kept.
  EXPECT_EQ(f32ToF16(1e-30f), 0x0000);
  EXPECT_EQ(f32ToF16(-1e-30f), 0x8000);
  EXPECT_EQ(f16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16ToF32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16ToF32(0x8001), -std::ldexp(1.0f, -24));
}

TEST(F16Test, EveryValueRoundTrips) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    float f = f16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16ToF32(f32ToF16(f))));
      continue;
    }
    ASSERT_EQ(f32ToF16(f), h) << std::hex << h;
  }
}

} // namespace

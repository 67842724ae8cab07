#include <gtest/gtest.h>

#include "tokenizer/utf8.h"

namespace slm {
using namespace slm::text;  // the internal text layer under test
namespace {

TEST(Utf8, ValidPrefix) {
  EXPECT_EQ(utf8_valid_prefix("a"), 1);
  EXPECT_EQ(utf8_valid_prefix("\xC3\xA9"), 2);
  EXPECT_EQ(utf8_valid_prefix("\xE2\x96\x81"), 3);
  EXPECT_EQ(utf8_valid_prefix("\xF0\x9F\xA6\x99"), 4);
  EXPECT_EQ(utf8_valid_prefix("\xF0\x9F"), 0);        // unfinished
  EXPECT_EQ(utf8_valid_prefix("\x80"), -1);           // stray continuation
  EXPECT_EQ(utf8_valid_prefix("\xC0\xAF"), -1);       // overlong
  EXPECT_EQ(utf8_valid_prefix("\xE0\x80\xAF"), -1);   // overlong
  EXPECT_EQ(utf8_valid_prefix("\xED\xA0\x80"), -1);   // surrogate
  EXPECT_EQ(utf8_valid_prefix("\xF4\x90\x80\x80"), -1);  // > U+10FFFF
  EXPECT_EQ(utf8_valid_prefix("\xC3" "a"), -1);
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xE2\x9C\x93"));
  EXPECT_FALSE(is_valid_utf8("h\xC3"));
}

TEST(Utf8, AssemblerHoldsPartialCharacters) {
  Utf8Assembler a;
  EXPECT_EQ(a.push("ab\xE2"), "ab");
  EXPECT_TRUE(a.has_pending());
  EXPECT_EQ(a.push("\x96"), "");
  EXPECT_EQ(a.push("\x81z"), "\xE2\x96\x81z");
  EXPECT_EQ(a.push("\xFF" "c"), "\xEF\xBF\xBD" "c");  // never valid: replaced at once
  EXPECT_EQ(a.push("\xF0\x9F"), "");
  EXPECT_EQ(a.flush(), "\xEF\xBF\xBD");  // unfinished at the end
  EXPECT_FALSE(a.has_pending());
}

}  // namespace
}  // namespace slm

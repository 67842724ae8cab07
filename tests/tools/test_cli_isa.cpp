// The kernel-path override, from the command line and the environment: a
// path the CPU (or build) lacks is one clear error line, never SIGILL.
#include <algorithm>

#include <gtest/gtest.h>

#include "cpu/kernels.h"
#include "support/testdata.h"

namespace slm {
namespace {

TEST(CliIsa, EveryAvailablePathRunsAndOthersAreRefused) {
  SLM_REQUIRE_TESTDATA();
  const std::string model = "'" + test::testdata_dir() + "/models/phi3-tiny.gguf'";
  const auto available = kernels::available_isas();
  for (kernels::Isa isa : {kernels::Isa::ref, kernels::Isa::avx2, kernels::Isa::avx512, kernels::Isa::avx512_vnni,
                           kernels::Isa::neon, kernels::Isa::neon_dotprod}) {
    const std::string name(kernels::isa_name(isa));
    const bool runs = std::find(available.begin(), available.end(), isa) != available.end();
    for (const std::string how : {"flag", "env"}) {
      const std::string cmd = how == "flag" ? test::slm_binary() + " -v --isa " + name + " info " + model
                                            : "SLM_ISA=" + name + " " + test::slm_binary() + " -v info " + model;
      const auto r = test::run_command(cmd + " 2>&1");
      if (runs) {
        EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
        EXPECT_NE(r.output.find("kernel path: " + name), std::string::npos) << r.output;
      } else {
        EXPECT_EQ(r.exit_code, 1) << cmd << "\n" << r.output;
        EXPECT_NE(r.output.find("slm: error: kernel path '" + name + "'"), std::string::npos) << r.output;
      }
    }
  }
  const auto bad = test::run_command(test::slm_binary() + " --isa sse9 info " + model + " 2>&1");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("unknown kernel path 'sse9'"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace slm

// Hostile TorchScript archives (tests/make_hostile.py) against the trust boundary (docs/SECURITY.md): each is
// refused by every command with one line naming what was found, nothing it carries runs, no file it names is read
// or written, and the input is left as it was. --trust-model lets code through, never a broken zip.
#include <gtest/gtest.h>

#include <filesystem>

#include "compress/base/error.h"
#include "compress/io/archive_check.h"
#include "compress/io/model_io.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace joule;

namespace {

std::string hostile(const std::string& name) { return std::string(JOULE_TEST_MODELS) + "/hostile/" + name + ".pt"; }

// inspect, quantize and energy on the file: the same one-line refusal, the file's bytes unchanged, no output.
void expect_refused_everywhere(const std::string& name, const std::string& needle) {
  const std::string path = hostile(name);
  const std::string before = test::slurp(path);
  ASSERT_FALSE(before.empty()) << path;
  fs::path out = test::scratch() / (name + ".out.pt");
  for (const std::string& cmd : {"inspect " + path, "quantize " + path + " -o " + out.string() + " -i 1x4",
                                 "energy " + path + " -i 1x4"}) {
    SCOPED_TRACE(cmd);
    test::expect_one_line_error(test::cli(cmd), needle);
  }
  EXPECT_EQ(test::slurp(path), before);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace

TEST(Security, CodeThatReadsAFileAtLoadIsRefusedUnlessTrusted) {
  expect_refused_everywhere("reads_a_file", "its code calls aten::from_file in __setstate__()");
  // Trusted, it loads and its forward adds the file's bytes (0, 1, 2, 3): the code did run, as the user allowed.
  auto r = test::cli("--trust-model inspect " + hostile("reads_a_file") + " -i 1x4");
  EXPECT_EQ(r.code, 0) << r.err;
  set_trust_models(true);
  LoadedModel lm = load_model(hostile("reads_a_file"));
  set_trust_models(false);
  EXPECT_TRUE(lm.module.attr("buf").toTensor().equal(at::arange(4, at::kFloat)));
}

TEST(Security, LoadTimeLoopsForeignOpsAndFileWritesAreRefused) {
  expect_refused_everywhere("loops_at_load", "its code calls while in __setstate__()");
  expect_refused_everywhere("foreign_op", "its code calls debugprims::load_tensor in forward()");
  expect_refused_everywhere("saves_a_file", "its code calls aten::save in forward()");
  // A string or comment naming torch.save is not a call.
  auto r = test::cli("inspect " + hostile("mentions_save_in_a_comment") + " -i 1x64");
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(Security, OtherPyTorchFormatsAreNamedWithWhatToDo) {
  for (const char* f : {"state_dict", "pickled_module"})
    test::expect_one_line_error(test::cli(std::string("inspect ") + hostile(f)),
                                "a torch.save file (a state dict or a pickled nn.Module), not TorchScript; script or trace");
  test::expect_one_line_error(test::cli("inspect " + std::string(JOULE_TEST_MODELS) + "/hostile/exported.pt2"),
                              "a torch.export program (.pt2), which C++ cannot load");
}

TEST(Security, BrokenZipsAreRefusedEvenWhenTrusted) {
  for (const char* trust : {"", "--trust-model "}) {
    SCOPED_TRACE(trust);
    test::expect_one_line_error(test::cli(std::string(trust) + "inspect " + hostile("crc_mismatch")), "CRC-32 mismatch");
    test::expect_one_line_error(test::cli(std::string(trust) + "inspect " + hostile("bomb_header")),
                                "claims 2147483647 bytes from");
    test::expect_one_line_error(test::cli(std::string(trust) + "inspect " + hostile("short_record") + " -i 1x64"),
                                "holds 8192 bytes but plain/data.pkl declares 4096 elements of 4 bytes");
  }
  EXPECT_TRUE(io::check_archive(hostile("plain")).empty());
}

TEST(Security, CapsBoundWhatAnArchiveMayDecompress) {
  io::ArchiveLimits tiny;
  tiny.max_total_bytes = 1000;
  try {
    io::check_archive(hostile("plain"), tiny);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("records decompress to over 1000 bytes in all"), std::string::npos) << e.what();
  }
  io::ArchiveLimits no_code;
  no_code.max_code_bytes = 10;
  EXPECT_THROW(io::check_archive(hostile("plain"), no_code), Error);
}

TEST(Security, OpNamesFromSerializedCode) {
  EXPECT_EQ(io::op_of_call("torch.relu"), "aten::relu");
  EXPECT_EQ(io::op_of_call("ops.joule.linear_w8a8"), "joule::linear_w8a8");
  EXPECT_EQ(io::op_of_call("torch.ops.aten.add"), "aten::add");
  EXPECT_EQ(io::op_of_call("torch._C._nn.gelu"), "aten::gelu");
  EXPECT_TRUE(io::op_allowed("aten::scaled_dot_product_attention"));
  EXPECT_TRUE(io::op_allowed("joule::linear_w4"));
  EXPECT_TRUE(io::op_allowed("torch.classes.quantized.LinearPackedParamsBase"));
  EXPECT_FALSE(io::op_allowed("aten::from_file"));
  EXPECT_FALSE(io::op_allowed("aten::save"));
  EXPECT_FALSE(io::op_allowed("c10d::allreduce_"));
  EXPECT_FALSE(io::op_allowed("torch.classes.myns.Evil"));
}

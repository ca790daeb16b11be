// Hostile TorchScript archives (tests/make_hostile.py) against the trust boundary (docs/SECURITY.md): each is
// refused by every command with one line naming what was found, nothing it carries runs, no file it names is read
// or written, and the input is left as it was. --trust-model lets code through, never a broken zip.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include "compress/base/error.h"
#include "compress/io/archive_check.h"
#include "compress/io/json_field.h"
#include "compress/io/model_io.h"
#include "compress/io/recipe_text.h"
#include "compress/ir/workload.h"
#include "compress/pipeline/recipe.h"
#include "models/bert.h"
#include "models/distill_task.h"
#include "models/tokenizer.h"
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

// Pickles that the opcode walk accepted but that crashed or exhausted memory: a million nested 1-tuples (a stack
// overflow freeing them, here and in LibTorch's recursive unpickler) and a 16 MiB string recalled 4M times (each
// recall copied it). Both are one-line errors from the check, before LibTorch reads the archive.
TEST(Security, PathologicalPicklesAreRefusedInBoundedMemory) {
  for (const auto& [name, needle] :
       {std::pair<std::string, std::string>{"pickle_nested", "plain/data.pkl: pickle nests values over 1000 levels deep"},
        {"pickle_recalled", "plain/data.pkl: pickle stack over 4M values"}}) {
    SCOPED_TRACE(name);
    const auto t0 = std::chrono::steady_clock::now();
    test::expect_one_line_error(test::cli("inspect " + hostile(name)), needle);
    test::expect_one_line_error(test::cli("--trust-model inspect " + hostile(name)), needle);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(120));
  }
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

// --- Untrusted inputs other than code (issue 14): carried workloads, data files, configs, names, disk full ---

namespace {

// A command on a hostile input: one-line error containing `needle`, within `seconds`, the input unchanged.
void expect_bounded_refusal(const std::string& cmd, const std::string& input, const std::string& needle, int seconds = 60) {
  SCOPED_TRACE(cmd);
  const std::string before = fs::is_regular_file(input) ? test::slurp(input) : "";
  const auto t0 = std::chrono::steady_clock::now();
  test::expect_one_line_error(test::cli(cmd), needle);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), seconds);
  if (!before.empty()) {
    EXPECT_EQ(test::slurp(input), before);
  }
}

std::string refusal_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

fs::path minilm_copy(const std::string& name, const std::function<void(nlohmann::json&)>& edit_config) {
  fs::path d = test::scratch() / name;
  test::remove_tree(d);
  fs::create_directories(d);
  for (const auto& e : fs::directory_iterator(JOULE_MINILM_DIR))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), d / e.path().filename());
  nlohmann::json cfg = nlohmann::json::parse(test::slurp(fs::path(JOULE_MINILM_DIR) / "config.json"));
  edit_config(cfg);
  std::ofstream(d / "config.json") << cfg.dump(2);
  return d;
}

}  // namespace

TEST(Security, ArchiveWorkloadsAreBoundedBeforeAnythingRuns) {
  const std::pair<const char*, const char*> cases[] = {
      {"workload_reps", "joule/workload.json': reps 2000000000 is outside 1..100000"},
      {"workload_huge", "input f32:50000x50000 brings the inputs to 10000000000 bytes, over the 1073741824 allowed"},
      {"workload_many_dims", "more than 8 dimensions"},
      {"workload_bad_type", "joule/workload.json': key 'reps': expected an integer, found a string"},
  };
  for (const auto& [name, needle] : cases)
    for (const std::string cmd : {"inspect ", "energy "})
      expect_bounded_refusal(cmd + hostile(name), hostile(name), needle, 30);
  // The provenance a save appends to, refused at load rather than after the run.
  const fs::path out = test::scratch() / "provenance_out.pt";
  expect_bounded_refusal("prune " + hostile("provenance_bad") + " -i 1x64 -o " + out.string(), hostile("provenance_bad"),
                         "provenance_bad.pt:joule/provenance.json': key 'passes': expected a list, found a number", 30);
  EXPECT_FALSE(fs::exists(out));
  // A user's own flags are bounded the same way; with -i the archive's workload is not read at all.
  expect_bounded_refusal("energy " + hostile("plain") + " -i 1x64 --reps 200000", hostile("plain"),
                         "reps 200000 is outside 1..100000");
  auto r = test::cli("energy " + hostile("workload_reps") + " -i 1x64 --reps 2 --energy-windows 2");
  EXPECT_EQ(r.code, 0) << r.err;

  Workload w;
  w.inputs = {parse_input_spec("i64:4294967296x4294967296")};
  try {
    w.check("w");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "w: input i64:4294967296x4294967296 brings the inputs to over 2^64 bytes, over the 1073741824 allowed");
  }
  w.inputs = {parse_input_spec("f32:16384x16384")};  // exactly 1 GiB: allowed
  EXPECT_NO_THROW(w.check());
  w.inputs.push_back(parse_input_spec("bool:1"));
  EXPECT_THROW(w.check(), Error);
}

TEST(Security, InterpreterErrorsKeepTheirCause) {
  expect_bounded_refusal("inspect " + hostile("plain") + " -i 1x5", hostile("plain"),
                         "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5 and 64x64)");
  const std::string msg =
      "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript (most recent call last):\n"
      "  File \"code/__torch__.py\", line 9, in forward\n    return torch.linear(x, w)\n           ~~~~ <--- HERE\n"
      "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5 and 4x8)\n\n";
  EXPECT_EQ(first_line(msg), "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5 and 4x8)");
  EXPECT_EQ(first_line("\n  plain message\nsecond"), "plain message");
}

TEST(Security, NamesFromFilesAreEscapedWhereverTheyAreEchoed) {
  EXPECT_EQ(printable("a\x1b[31mb\x07"), "a\\x1b[31mb\\x07");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // UTF-8 stays
  EXPECT_EQ(printable("\xc2\x9b" "2J"), "\\xc2\\x9b2J");                        // C1 CSI escaped
  EXPECT_EQ(printable("\xff\xc3"), "\\xff\\xc3");                                // not UTF-8
  EXPECT_EQ(printable(std::string(300, 'x'), 10), std::string(10, 'x') + "...");
  // A tensor name in a safetensors header and an input spec in an archive's workload.
  for (const auto& [cmd, needle] : std::vector<std::pair<std::string, std::string>>{
           {"inspect " + std::string(JOULE_TEST_MODELS) + "/hostile/escape_dir", "tensor '\\x1b]0;owned\\x07\\x1b[2Jembeddings"},
           {"inspect " + hostile("workload_escape"), "input spec '\\x1b]0;owned\\x07\\x1b[2J1x64'"}}) {
    auto r = test::cli(cmd);
    test::expect_one_line_error(r, needle);
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << cmd;
    EXPECT_EQ(r.err.find('\x07'), std::string::npos) << cmd;
  }
}

TEST(Security, DataInputsAreRegularFilesWithinTheirCaps) {
  if (std::string(JOULE_MINILM_DIR).empty()) GTEST_SKIP() << "no MiniLM checkpoint";
  const fs::path d = test::scratch() / "data_inputs";
  test::remove_tree(d);
  fs::create_directories(d);
  const fs::path fifo = d / "fifo.txt", big = d / "big.tsv";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  { std::ofstream(big.string()); }
  fs::resize_file(big, (uint64_t{1} << 30) + 1);  // sparse: no disk used
  const std::string enc = JOULE_MINILM_DIR;
  const std::string eval = "eval stsb --model " + enc + " --data ";
  expect_bounded_refusal(eval + "/dev/zero", "", "STS-B file '/dev/zero': a character device, not a regular file", 30);
  expect_bounded_refusal(eval + fifo.string(), "", "a FIFO, not a regular file", 30);
  expect_bounded_refusal(eval + big.string(), "", "1073741825 bytes, over the 1073741824 a STS-B file may have", 30);
  expect_bounded_refusal("energy --op-constants /dev/zero " + std::string(JOULE_TEST_MODELS) + "/mlp.pt", "",
                         "op constants '/dev/zero': a character device", 30);
  // Calibration text, training sentences and vocab files go through the same reader.
  const models::SentenceEncoder encoder = models::load_encoder(enc);
  EXPECT_EQ(refusal_of([&] { models::text_calibration(encoder, fifo.string(), 4); }),
            "calibration file '" + fifo.string() + "': a FIFO, not a regular file");
  EXPECT_EQ(refusal_of([&] { models::text_calibration(encoder, "/dev/zero", 4); }),
            "calibration file '/dev/zero': a character device, not a regular file");
  EXPECT_EQ(refusal_of([&] { models::read_sentences(fifo.string()); }), "training data '" + fifo.string() + "': a FIFO, not a regular file");
  EXPECT_EQ(refusal_of([&] { text::WordPieceTokenizer::from_vocab_file("/dev/zero", true); }),
            "vocab file '/dev/zero': a character device, not a regular file");
}

TEST(Security, ConfigFieldsAreCheckedAgainstTheCheckpoint) {
  if (std::string(JOULE_MINILM_DIR).empty()) GTEST_SKIP() << "no MiniLM checkpoint";
  using J = nlohmann::json;
  const std::pair<std::function<void(J&)>, std::string> cases[] = {
      {[](J& c) { c["num_hidden_layers"] = 3; }, "the config says num_hidden_layers 3 but the checkpoint has 6 layers"},
      {[](J& c) { c["num_hidden_layers"] = 8; }, "the config says num_hidden_layers 8 but the checkpoint has 6 layers"},
      {[](J& c) { c["num_hidden_layers"] = "6"; }, "config.json': key 'num_hidden_layers': expected an integer, found a string"},
      {[](J& c) { c["layer_norm_eps"] = 0; }, "layer_norm_eps 0 is not in (0, 1]"},
      {[](J& c) { c["layer_norm_eps"] = "small"; }, "key 'layer_norm_eps': expected a number, found a string"},
      {[](J& c) { c["intermediate_size"] = 100; }, "layer 0 has 1536 feed-forward neurons but the config says intermediate_size 100"},
      {[](J& c) { c["hidden_size"] = 192; }, "has shape [30522, 384] but the config implies [30522, 192]"},
      {[](J& c) { c["model_type"] = 7; }, "key 'model_type': expected a string, found a number"},
  };
  int i = 0;
  for (const auto& [edit, needle] : cases) {
    const fs::path d = minilm_copy("cfg" + std::to_string(i++), edit);
    expect_bounded_refusal("inspect " + d.string(), (d / "config.json").string(), needle, 60);
  }
  // The sentence-transformers files beside it are read the same way.
  const fs::path d = minilm_copy("tokcfg", [](J&) {});
  fs::remove(d / "tokenizer_config.json");
  std::ofstream(d / "tokenizer_config.json") << R"({"do_lower_case": "yes"})";
  expect_bounded_refusal("inspect " + d.string(), "", "tokenizer_config.json': key 'do_lower_case': expected true or false, found a string");
  fs::remove(d / "tokenizer_config.json");
  fs::remove(d / "modules.json");
  std::ofstream(d / "modules.json") << R"([{"type": 5}])";
  expect_bounded_refusal("inspect " + d.string(), "", "modules.json': key 'type': expected a string, found a number");
}

TEST(Security, JsonFieldsAreTypedWithFileAndKey) {
  const auto j = nlohmann::json::parse(R"({"n": 3000000000, "neg": -1, "s": "x", "b": true, "f": 0.5})");
  EXPECT_EQ(io::json_get<int64_t>(j, "n", "f.json"), 3000000000);
  EXPECT_EQ(refusal_of([&] { io::json_get<int>(j, "n", "f.json"); }), "'f.json': key 'n': 3000000000 is out of range (-2147483648 to 2147483647)");
  EXPECT_EQ(refusal_of([&] { io::json_get<uint64_t>(j, "neg", "f.json"); }), "'f.json': key 'neg': -1 is out of range (0 to 18446744073709551615)");
  EXPECT_EQ(refusal_of([&] { io::json_get<int>(j, "f", "f.json"); }), "'f.json': key 'f': expected an integer, found a number with a fraction");
  EXPECT_EQ(refusal_of([&] { io::json_get<bool>(j, "s", "f.json"); }), "'f.json': key 's': expected true or false, found a string");
  EXPECT_EQ(refusal_of([&] { io::json_get<std::string>(j, "gone", "f.json"); }), "'f.json': key 'gone' is missing");
  EXPECT_EQ(io::json_value<std::string>(j, "gone", "dflt", "f.json"), "dflt");
  EXPECT_DOUBLE_EQ(io::json_get<double>(j, "f", "f.json"), 0.5);
  EXPECT_EQ(io::json_get<uint64_t>(nlohmann::json{{"k", 5}}, "k", "w"), 5u);  // a signed-stored 5 fits uint64
}

// Disk full while saving: one line naming the output, no temp file or partial output left. Under RLIMIT_FSIZE
// (joule ignores SIGXFSZ, so writes fail with EFBIG), and on a 64 KiB tmpfs where the test may mount one (root).
TEST(Security, DiskFullIsOneLineAndLeavesNothingBehind) {
  const std::string mlp = std::string(JOULE_TEST_MODELS) + "/mlp.pt";  // 435 KB, 110 KB in W8A8: neither fits
  const std::string before = test::slurp(mlp);
  const fs::path dir = test::scratch() / "full";
  auto left_in_dir = [&] {
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
    return left;
  };
  for (const bool tmpfs : {false, true}) {
    SCOPED_TRACE(tmpfs ? "tmpfs" : "RLIMIT_FSIZE");
    test::remove_tree(dir);
    fs::create_directories(dir);
    if (tmpfs && (::geteuid() != 0 || ::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") != 0)) continue;
    for (const std::string cmd : {"prune ", "quantize "}) {
      const std::string out = (dir / (cmd.substr(0, 1) + ".pt")).string();
      std::string line = cmd + mlp + " -o " + out;
      if (!tmpfs)  // test::cli runs JOULE_BIN first: a no-op, then joule under its own limit (ulimit -f: KiB)
        line = "--help >/dev/null; bash -c \"ulimit -f 64; exec " + std::string(JOULE_BIN) + " " + line + "\"";
      test::expect_one_line_error(test::cli(line), "output '" + out + "': cannot write: " +
                                                       (tmpfs ? "No space left on device" : "File too large"));
      EXPECT_EQ(test::slurp(mlp), before);
      EXPECT_EQ(left_in_dir(), std::vector<std::string>{});
    }
    if (tmpfs) {  // a report onto a full disk (the model goes elsewhere)
      std::ofstream(dir / "fill") << std::string(62 * 1024, 'x');
      const fs::path elsewhere = test::scratch() / "full_model.pt";
      test::expect_one_line_error(test::cli("prune " + mlp + " -o " + elsewhere.string() + " --report " + (dir / "r.json").string()),
                                  "output '" + (dir / "r.json").string() + "': cannot write the temp file: No space left on device");
      EXPECT_EQ(left_in_dir(), std::vector<std::string>{"fill"});
      EXPECT_FALSE(fs::exists(elsewhere));  // the model is not written without its report
      ::umount(dir.c_str());
    }
  }
}

// A model with --report and --plot is one set of outputs: a failure writing the last one leaves none of them (an
// old output unchanged, no temp file anywhere), not the model and report of a run that failed. The plot fails on
// a full 64 KiB tmpfs (root) or in a folder it may not write (others), after the model and report are written.
TEST(Security, OutputsOfARunAppearTogetherOrNotAtAll) {
  const std::string mlp = std::string(JOULE_TEST_MODELS) + "/mlp.pt";
  const std::string before = test::slurp(mlp);
  const fs::path dir = test::scratch() / "set", bad = test::scratch() / "set_bad";
  test::remove_tree(dir), test::remove_tree(bad);
  fs::create_directories(dir), fs::create_directories(bad);
  const bool tmpfs = ::geteuid() == 0 && ::mount("tmpfs", bad.c_str(), "tmpfs", 0, "size=64k") == 0;
  if (tmpfs)
    std::ofstream(bad / "fill") << std::string(62 * 1024, 'x');
  else
    fs::permissions(bad, fs::perms::owner_read | fs::perms::owner_exec);
  auto names = [](const fs::path& d) {
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(d)) left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    return left;
  };
  const fs::path model = dir / "m.pt", report = dir / "r.json", plot = bad / "p.svg";
  std::ofstream(model) << "the previous run's model";
  auto run = [&](const fs::path& svg) {
    return test::cli("prune " + mlp + " --sparsity 0.5 -o " + model.string() + " --report " + report.string() +
                     " --plot " + svg.string());
  };
  test::expect_one_line_error(run(plot), "output '" + plot.string() + "': " +
                                             (tmpfs ? "cannot write the temp file: No space left on device"
                                                    : "cannot create a temp file beside it: Permission denied"));
  EXPECT_EQ(test::slurp(model), "the previous run's model");
  EXPECT_EQ(names(dir), std::vector<std::string>{"m.pt"});
  EXPECT_EQ(names(bad), tmpfs ? std::vector<std::string>{"fill"} : std::vector<std::string>{});
  EXPECT_EQ(test::slurp(mlp), before);
  // The same run with the plot beside the others writes all three.
  const auto ok = run(dir / "p.svg");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(names(dir), (std::vector<std::string>{"m.pt", "p.svg", "r.json"}));
  EXPECT_EQ(test::slurp(model).substr(0, 2), "PK");
  EXPECT_EQ(nlohmann::json::parse(test::slurp(report))["passes"].size(), 1u);
  EXPECT_NE(test::slurp(dir / "p.svg").find("<svg"), std::string::npos);
  if (tmpfs) ::umount(bad.c_str());
  fs::permissions(bad, fs::perms::owner_all);
}

// Found by tools/fuzz.sh (recipe): bytes that are not UTF-8 parsed into option strings, and the report's or the
// archive's JSON writer threw on them after the whole run.
TEST(Security, RecipesMustBeUtf8) {
  EXPECT_EQ(refusal_of([] { recipe_json("passes:\n  - prune: {sparsity: 0.5, x: \"a\xffz\"}\n", "r.yaml"); }),
            "recipe 'r.yaml', line 2: byte 0xff is not UTF-8");
  EXPECT_EQ(refusal_of([] { recipe_json("passes: [{prune: {x: \"\xed\xa0\x80\"}}]", "r.yaml"); }),  // a UTF-16 surrogate
            "recipe 'r.yaml', line 1: byte 0xed is not UTF-8");
  EXPECT_EQ(recipe_json("passes: [{prune: {x: \"caf\xc3\xa9\"}}]", "r.yaml")["passes"][0]["prune"]["x"], "caf\xc3\xa9");
}

TEST(Security, FuzzFindingsOfTheLastRunAreOneLineErrors) {
  // tools/fuzz.sh findings, byte for byte. A 52-byte "zip" whose end record claims zip64: the zip64 record's bounds
  // check underflowed for files under 56 bytes and the reader went far outside the mapping (ASan: SEGV in le()).
  const unsigned char zip[] = {  0x50, 0x4b, 0x03, 0x04, 0x6c, 0x6c, 0x6f, 0x61, 0x00, 0x00, 0x50, 0x4b,  0x06, 0x07, 0x00, 0x00, 0x00, 0x00, 0x83, 0x08, 0x00, 0x00, 0x00, 0x2c,  0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00,  0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff,  0x07, 0x00, 0x00, 0x00};
  const auto path = std::filesystem::temp_directory_path() / ("joule_fuzz_zip64_" + std::to_string(::getpid()) + ".pt");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(zip), sizeof zip);
  EXPECT_THROW(io::check_archive(path.string()), Error);
  std::filesystem::remove(path);
  // A recipe starting with NUL bytes, which yaml-cpp decodes as UTF-32 into strings that are not UTF-8: the JSON
  // writer threw (std::terminate in the fuzz target) instead of a one-line refusal.
  const unsigned char recipe[] = {  0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x2c, 0x3a, 0x34, 0x22,  0x73, 0x0a};
  EXPECT_THROW(io::recipe_text_json(std::string(reinterpret_cast<const char*>(recipe), sizeof recipe), "fuzz.yaml"),
               Error);
}

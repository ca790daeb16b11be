#include "kernels/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/formats/formats.h"

namespace joule::kernels::isa {
namespace {

CpuFeatures probe() {
  __builtin_cpu_init();  // harmless when the runtime already ran it; needed if called from a static initializer
  CpuFeatures f;
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.bf16 = __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
  return f;
}

Cap read_cap() {
  const char* v = std::getenv("JOULE_CPU_ISA");
  if (!v) return Cap::kNone;
  if (std::strcmp(v, "avx2") == 0) return Cap::kAvx2;
  if (std::strcmp(v, "scalar") == 0) return Cap::kScalar;
  return Cap::kNone;  // any other value: no cap
}

CpuFeatures capped(CpuFeatures f, Cap cap) {
  if (cap != Cap::kNone) f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = f.bf16 = false;
  if (cap == Cap::kScalar) f.avx2 = f.fma = false;
  return f;
}

std::atomic<bool> w8a8_vnni_on{true};
std::atomic<bool> w4_avx512_on{true};
std::atomic<bool> w4a8_vnni_on{true};
std::atomic<bool> attention_avx512_on{true};

}  // namespace

Cap cpu_cap() {
  static const Cap c = read_cap();
  return c;
}

const CpuFeatures& cpu_hardware() {
  static const CpuFeatures f = probe();
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = capped(cpu_hardware(), cpu_cap());
  return f;
}

W8A8Impl w8a8_gemm_impl(int64_t M, int64_t K, bool prepacked) {
  if (!cpu_features().avx2_fma() || K > kW8A8MaxK) return W8A8Impl::kReference;
  if ((prepacked || M >= kW8A8VnniMinRows) && w8a8_vnni_available()) return W8A8Impl::kAvx512Vnni;
  return W8A8Impl::kAvx2;
}

W8A8Impl w8a8_quantize_impl() { return cpu_features().avx2_fma() ? W8A8Impl::kAvx2 : W8A8Impl::kReference; }

void set_w8a8_vnni(bool on) { w8a8_vnni_on.store(on, std::memory_order_relaxed); }
bool w8a8_vnni_available() {
  return cpu_features().avx512_vnni() && w8a8_vnni_on.load(std::memory_order_relaxed);
}

void set_w4_avx512(bool on) { w4_avx512_on.store(on, std::memory_order_relaxed); }

void set_w4a8_vnni(bool on) { w4a8_vnni_on.store(on, std::memory_order_relaxed); }

W4A8Impl w4a8_impl(int64_t group) {
  if (!cpu_features().avx2_fma() || group < kW4A8MinGroup || group > kW4A8MaxGroup) return W4A8Impl::kReference;
  return cpu_features().avx512_vnni() && w4a8_vnni_on.load(std::memory_order_relaxed) ? W4A8Impl::kPanelVnni
                                                                                       : W4A8Impl::kPanelAvx2;
}

W4Impl w4_impl(int64_t M, int64_t group) {
  if (!cpu_features().avx2_fma()) return W4Impl::kReference;
  if (M <= kW4Gemv512MaxM && group >= kW4Gemv512MinGroup && cpu_features().avx512() &&
      w4_avx512_on.load(std::memory_order_relaxed))
    return W4Impl::kGemvAvx512;
  return M <= kW4GemvMaxM && group >= kW4GemvMinGroup ? W4Impl::kGemvAvx2 : W4Impl::kGemmAvx2;
}

Sp24Impl sp24_impl(int64_t M) {
  if (cpu_cap() == Cap::kScalar) return Sp24Impl::kReference;
  if (M < kSp24TileMinRows) return Sp24Impl::kRowTiles;
  return cpu_features().avx2 ? Sp24Impl::kTilesAvx2 : Sp24Impl::kTiles;
}

AttentionImpl attention_impl(int64_t head_dim) {
  const bool dim = head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
  if (!dim || !cpu_features().avx2_fma()) return AttentionImpl::kReference;
  return cpu_features().avx512() && attention_avx512_on.load(std::memory_order_relaxed) ? AttentionImpl::kAvx512
                                                                                          : AttentionImpl::kAvx2;
}

void set_attention_avx512(bool on) { attention_avx512_on.store(on, std::memory_order_relaxed); }

}  // namespace joule::kernels::isa

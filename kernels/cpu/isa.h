// CPU features and kernel dispatch, in one place. The CPU is probed once (cpuid through __builtin_cpu_supports),
// the JOULE_CPU_ISA override is read once, and each kernel family asks one function here which of its
// implementations runs; w8a8.cpp, w4.cpp and sp24.cpp hold no CPU checks of their own. The fast paths are
// compiled per function (__attribute__((target))), so the library runs on any x86-64 CPU and these answers are
// what keeps a CPU from executing instructions it lacks.
//
// JOULE_CPU_ISA (read at the first kernel call, like oneDNN's ONEDNN_MAX_CPU_ISA; for comparisons and tests):
//   avx2     the AVX-512 / VNNI paths are off (the W8A8 GEMM runs its AVX2 kernels on a VNNI machine)
//   scalar   every SIMD path is off: W8A8, W4 and SP24 run their scalar reference kernels (*_ref)
//   unset, or any other value: no cap, every path the CPU supports may run.
// An override only takes features away; it never enables one the CPU lacks.
#pragma once
#include <cstdint>

namespace joule::kernels::isa {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool bf16 = false;  // AVX512_BF16 or AMX-BF16: bfloat16 dot products in hardware (oneDNN's bf16 matmul)

  // What JOULE_AVX2 code needs.
  bool avx2_fma() const { return avx2 && fma; }
  // What JOULE_VNNI code needs (the W8A8 and W4A8 VNNI kernels).
  bool avx512_vnni() const { return avx2_fma() && avx512f && avx512bw && avx512vl && avx512vnni; }
  // What JOULE_AVX512 code needs (the W4 AVX-512 GEMV, attention).
  bool avx512() const { return avx2_fma() && avx512f && avx512bw && avx512vl; }
};

// The targets the kernels' fast paths are compiled for, one per check above: a function so marked runs only after
// its check (the dispatch functions below make it).
#define JOULE_AVX2 __attribute__((target("avx2,fma")))
#define JOULE_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define JOULE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

// The JOULE_CPU_ISA cap, read once.
enum class Cap { kNone, kAvx2, kScalar };
Cap cpu_cap();
// What the CPU has, probed once.
const CpuFeatures& cpu_hardware();
// What the kernels may use: cpu_hardware() less what cpu_cap() takes away (kAvx2: the AVX-512 features;
// kScalar: all of them), computed once.
const CpuFeatures& cpu_features();

// ---- dispatch thresholds (measured on the project machine; the kernel files explain each) -------------------
constexpr int64_t kW8A8VnniMinRows = 16;  // the VNNI GEMM repacking weights per call: worth it from 16 rows
constexpr int64_t kW4GemvMaxM = 4;        // from M = 5 the W4 panel GEMM beats the GEMV (K = N = 4096)
constexpr int64_t kW4GemvMinGroup = 16;   // the W4 GEMV reads 16-weight chunks that never straddle a group
constexpr int64_t kW4Gemv512MaxM = 16;    // the AVX-512 GEMV streams the weights once for up to 16 rows of x
constexpr int64_t kW4Gemv512MinGroup = 32;  // and reads 32-weight chunks
constexpr int64_t kW4A8MinGroup = 8;         // the W4A8 kernel steps 8 k at a time, within one group
constexpr int64_t kW4A8MaxGroup = 65536;     // its int32 lanes hold a group's products exactly (and in float)
constexpr int64_t kSp24TileMinRows = 4;   // below this many rows of x, SP24 runs its one-row tiles

// ---- one dispatch function per kernel family ------------------------------------------------------------------

// W8A8 GEMM (gemm_s8s8, linear_w8a8, detail::gemm_s8s8_s32) for M rows of x and K input features:
//   kReference   no AVX2+FMA, or K > kW8A8MaxK (int32 sums could overflow; the reference sums in int64)
//   kAvx512Vnni  M >= kW8A8VnniMinRows (any M with prepacked weights, W8A8Packed) on a CPU with AVX-512 VNNI,
//                unless set_w8a8_vnni(false)
//   kAvx2        otherwise
enum class W8A8Impl { kReference, kAvx2, kAvx512Vnni };
W8A8Impl w8a8_gemm_impl(int64_t M, int64_t K, bool prepacked = false);
// quantize_rows_s8: kAvx2 with AVX2+FMA, else kReference (any K).
W8A8Impl w8a8_quantize_impl();
// The test switch behind detail::use_vnni / detail::vnni_available (kernels/cpu/w8a8.h): whether the VNNI GEMM
// may run (default true), and whether it would run for a large enough M (CPU, override and switch together).
void set_w8a8_vnni(bool on);
bool w8a8_vnni_available();

// W4 linear_w4 for M rows of x and group size `group` (already validated):
//   kReference   no AVX2+FMA
//   kGemvAvx512  M <= kW4Gemv512MaxM and group >= kW4Gemv512MinGroup on a CPU with AVX-512 (F, BW, VL), unless
//                set_w4_avx512(false)
//   kGemvAvx2    M <= kW4GemvMaxM and group >= kW4GemvMinGroup
//   kGemmAvx2    otherwise
enum class W4Impl { kReference, kGemvAvx2, kGemvAvx512, kGemmAvx2 };
W4Impl w4_impl(int64_t M, int64_t group);
// The test switch for the AVX-512 GEMV (default on), so that tests reach the AVX2 GEMV on such CPUs too.
void set_w4_avx512(bool on);

// W4A8 linear_w4a8 for group size `group` (already validated), kW4A8MinGroup <= group <= kW4A8MaxGroup:
//   kPanelVnni   on a CPU with AVX-512 VNNI, unless set_w4a8_vnni(false)
//   kPanelAvx2   with AVX2+FMA (vpmaddubsw); the same panels and the same bits as kPanelVnni
//   kReference   otherwise (other groups too)
enum class W4A8Impl { kReference, kPanelAvx2, kPanelVnni };
W4A8Impl w4a8_impl(int64_t group);
// The test switch for the VNNI W4A8 kernel (default on), so that tests reach the AVX2 one on such CPUs too.
void set_w4a8_vnni(bool on);

// SP24 linear_sp24 for M rows of x (every path is bit-identical to the reference):
//   kReference   JOULE_CPU_ISA=scalar only
//   kRowTiles    M < kSp24TileMinRows: one row of x x 8 weight rows, baseline x86-64 code
//   kTilesAvx2   16 rows of x x 4 weight rows, AVX2 code (no FMA)
//   kTiles       the same tiles in baseline code, on CPUs without AVX2
enum class Sp24Impl { kReference, kRowTiles, kTiles, kTilesAvx2 };
Sp24Impl sp24_impl(int64_t M);

// Attention (attention_f32) for head dim D in {16, 32, 64, 128}:
//   kAvx512     on a CPU with AVX-512 (F, BW, VL), unless set_attention_avx512(false)
//   kAvx2       with AVX2+FMA
//   kReference  other head dims, or neither (the binding then runs ATen's attention instead)
enum class AttentionImpl { kReference, kAvx2, kAvx512 };
AttentionImpl attention_impl(int64_t head_dim);
// The test switch for the AVX-512 attention kernel (default on), so that tests reach the AVX2 one on such CPUs.
void set_attention_avx512(bool on);

}  // namespace joule::kernels::isa

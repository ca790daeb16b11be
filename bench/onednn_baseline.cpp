#include "bench/onednn_baseline.h"

#include <dnnl.hpp>
#include <unordered_map>

namespace joule::bench {

struct OneDnnMatmul::State {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{eng};
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul mm;
  dnnl::memory::desc xd, bd, yd;
  dnnl::memory w;
  bool int8 = false;
};

OneDnnMatmul::OneDnnMatmul(Kind kind, int64_t M, int64_t K, int64_t N, const void* w) : s_(new State) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  State& s = *s_;
  s.int8 = kind == kU8S8S32;
  const dt wt = s.int8 ? dt::s8 : dt::f32;
  s.xd = dnnl::memory::desc({M, K}, s.int8 ? dt::u8 : dt::f32, tag::ab);
  s.yd = dnnl::memory::desc({M, N}, s.int8 ? dt::s32 : dt::f32, tag::ab);
  s.bd = dnnl::memory::desc({1, N}, dt::f32, tag::ab);
  const dnnl::memory::desc wany({K, N}, wt, tag::any), wplain({K, N}, wt, tag::ba);  // w [N,K] row-major
  s.pd = s.int8 ? dnnl::matmul::primitive_desc(dnnl::matmul::desc(s.xd, wany, s.yd), s.eng)
                : dnnl::matmul::primitive_desc(dnnl::matmul::desc(s.xd, wany, s.bd, s.yd), s.eng);
  s.mm = dnnl::matmul(s.pd);
  dnnl::memory src(wplain, s.eng, const_cast<void*>(w));
  s.w = dnnl::memory(s.pd.weights_desc(), s.eng);
  dnnl::reorder(src, s.w).execute(s.stream, src, s.w);
  s.stream.wait();
}

OneDnnMatmul::~OneDnnMatmul() = default;

void OneDnnMatmul::run(const void* x, const float* bias, void* y) {
  State& s = *s_;
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(s.xd, s.eng, const_cast<void*>(x))},
                                             {DNNL_ARG_WEIGHTS, s.w},
                                             {DNNL_ARG_DST, dnnl::memory(s.yd, s.eng, y)}};
  if (!s.int8) args.emplace(DNNL_ARG_BIAS, dnnl::memory(s.bd, s.eng, const_cast<float*>(bias)));
  s.mm.execute(s.stream, args);
  s.stream.wait();
}

const char* OneDnnMatmul::impl() const { return s_->pd.impl_info_str(); }

}  // namespace joule::bench

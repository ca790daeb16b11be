// The CUDA target links and answers on a machine without a GPU: kNoDevice, never a crash.
#include <gtest/gtest.h>

#include "cuda/device.h"

TEST(CudaDevice, ReportsComputeCapabilityOrNoDevice) {
  int sm = -1;
  auto s = joule::cuda::device_sm(0, &sm);
  if (s == joule::cuda::Status::kNoDevice) GTEST_SKIP() << joule::cuda::status_string(s);
  ASSERT_EQ(s, joule::cuda::Status::kOk);
  EXPECT_GE(sm, 30);
  EXPECT_LT(sm, 200);
}

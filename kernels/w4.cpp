#include "kernels/w4.h"

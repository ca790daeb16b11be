#include "kernels/w8a8.h"

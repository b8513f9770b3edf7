/* longtail: long-tailed image recognition in C. This header includes the whole public API.
 * Ownership rules are stated at the top of each module header. */
#ifndef LONGTAIL_H
#define LONGTAIL_H

#include "core.h"
#include "tensor.h"
#include "autodiff.h"
#include "ops.h"
#include "io.h"
#include "nn.h"
#include "optim.h"
#include "data.h"
#include "eval.h"
#include "loss.h"

#endif

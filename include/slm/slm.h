// Umbrella header of the public slm API. See docs/library.md.
#pragma once

#include "slm/chat.h"
#include "slm/engine.h"
#include "slm/error.h"
#include "slm/generate.h"
#include "slm/model.h"
#include "slm/sampler.h"
#include "slm/session.h"
#include "slm/tokenizer.h"
#include "slm/version.h"

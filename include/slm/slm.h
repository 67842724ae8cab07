// Umbrella header of the public slm API.
#pragma once

#include "slm/error.h"
#include "slm/version.h"

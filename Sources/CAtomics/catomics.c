// Everything is inline in include/catomics.h; this file gives the target a translation unit.
#include "catomics.h"

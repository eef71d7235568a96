#include "cnative.h"

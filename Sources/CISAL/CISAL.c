#include "CISAL.h"
int cisal_available(void) { return 0; }

#define _GNU_SOURCE
#include <sched.h>
#include "chostaffinity.h"

int trivisor_bind_current_thread(const int *cpus, int count) {
  cpu_set_t set;
  CPU_ZERO(&set);
  int any = 0;
  for (int i = 0; i < count; i++) {
    if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) {
      CPU_SET(cpus[i], &set);
      any = 1;
    }
  }
  if (!any) return -1;
  return sched_setaffinity(0, sizeof(set), &set);
}

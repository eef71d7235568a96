#ifndef CHOSTAFFINITY_H
#define CHOSTAFFINITY_H

/// Binds the calling thread to the host CPUs `cpus[0..<count]` (sched_setaffinity); CPUs at or
/// beyond CPU_SETSIZE are left out. Returns 0, or -1 when none is left or the host refused.
int trivisor_bind_current_thread(const int *cpus, int count);

#endif

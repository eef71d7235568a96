#ifndef CATOMICS_H
#define CATOMICS_H

#include <stdbool.h>
#include <stdint.h>

/// Atomic operations on guest memory through host pointers, for software engines whose vCPUs run
/// on several host threads (Swift's Synchronization module has no atomics on raw addresses).
/// Sequentially consistent, like a LOCK-prefixed x86 instruction.

/// Compare-and-exchange of `size` (1, 2, 4 or 8) bytes at `p` (naturally aligned or not: x86
/// hosts handle unaligned locked operations within a cache line; callers keep them in one page).
/// True when `*p` held `expected` and now holds `desired`.
static inline bool ca_compare_exchange(void *p, int size, uint64_t expected, uint64_t desired) {
  switch (size) {
  case 1: {
    uint8_t e = (uint8_t)expected;
    return __atomic_compare_exchange_n((uint8_t *)p, &e, (uint8_t)desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
  }
  case 2: {
    uint16_t e = (uint16_t)expected;
    return __atomic_compare_exchange_n((uint16_t *)p, &e, (uint16_t)desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
  }
  case 4: {
    uint32_t e = (uint32_t)expected;
    return __atomic_compare_exchange_n((uint32_t *)p, &e, (uint32_t)desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
  }
  default: {
    uint64_t e = expected;
    return __atomic_compare_exchange_n((uint64_t *)p, &e, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  }
  }
}

/// An atomic load of `size` (1, 2, 4 or 8) bytes at `p`, zero-extended.
static inline uint64_t ca_load(const void *p, int size) {
  switch (size) {
  case 1: return __atomic_load_n((const uint8_t *)p, __ATOMIC_SEQ_CST);
  case 2: return __atomic_load_n((const uint16_t *)p, __ATOMIC_SEQ_CST);
  case 4: return __atomic_load_n((const uint32_t *)p, __ATOMIC_SEQ_CST);
  default: return __atomic_load_n((const uint64_t *)p, __ATOMIC_SEQ_CST);
  }
}

// Binding a vCPU thread to host CPUs (`--host-affinity`).
#include "chostaffinity.h"

#endif

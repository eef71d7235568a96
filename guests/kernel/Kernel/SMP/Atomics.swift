// Atomic operations on 64-bit words shared between CPUs (Arch/cpu.S). The words live in memory
// the kernel allocates once and never frees (heap or static areas), so their addresses are stable.

@_extern(c, "atomic_load64") func atomic_load64(_ word: UnsafeMutablePointer<UInt64>) -> UInt64
@_extern(c, "atomic_store64") func atomic_store64(_ word: UnsafeMutablePointer<UInt64>, _ value: UInt64)
@_extern(c, "atomic_fetch_add64") func atomic_fetch_add64(_ word: UnsafeMutablePointer<UInt64>, _ value: UInt64)
  -> UInt64
@_extern(c, "atomic_compare_exchange64") func atomic_compare_exchange64(
  _ word: UnsafeMutablePointer<UInt64>, _ expected: UInt64, _ desired: UInt64
) -> Int32
@_extern(c, "atomic_or64") func atomic_or64(_ word: UnsafeMutablePointer<UInt64>, _ bits: UInt64)
@_extern(c, "atomic_and64") func atomic_and64(_ word: UnsafeMutablePointer<UInt64>, _ bits: UInt64)

/// One shared 64-bit word with atomic access, allocated once from the kernel heap.
struct AtomicWord {
  let address: UnsafeMutablePointer<UInt64>

  init(_ value: UInt64 = 0) {
    address = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    address.initialize(to: value)
  }

  init(at address: UnsafeMutablePointer<UInt64>) { self.address = address }

  func load() -> UInt64 { atomic_load64(address) }
  func store(_ value: UInt64) { atomic_store64(address, value) }
  /// Adds and returns the value before.
  @discardableResult func add(_ value: UInt64) -> UInt64 { atomic_fetch_add64(address, value) }
  func compareExchange(expected: UInt64, desired: UInt64) -> Bool {
    atomic_compare_exchange64(address, expected, desired) != 0
  }
  func setBits(_ bits: UInt64) { atomic_or64(address, bits) }
  func clearBits(_ bits: UInt64) { atomic_and64(address, ~bits) }
}

import Foundation
import X86

/// 16 MiB of zeroed RAM for SingleStep tests, remembering which pages were handed out for writing
/// so they can be cleared between tests.
final class RealModeMemory: PhysicalMemory {
  static let size = 16 << 20
  let base: UnsafeMutableRawPointer
  private(set) var dirtyPages = Set<Int>()

  init() {
    base = calloc(Self.size, 1) ?? UnsafeMutableRawPointer.allocate(byteCount: Self.size, alignment: 4096)
  }

  deinit { free(base) }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard physical < UInt64(Self.size), length >= 0, physical + UInt64(length) <= UInt64(Self.size) else { return nil }
    if write { dirtyPages.insert(Int(physical >> 12)) }
    return base + Int(physical)
  }

  func store(_ value: UInt8, at address: UInt32) {
    guard Int(address) < Self.size else { return }
    base.storeBytes(of: value, toByteOffset: Int(address), as: UInt8.self)
    dirtyPages.insert(Int(address >> 12))
  }

  func load(_ address: UInt32) -> UInt8? {
    guard Int(address) < Self.size else { return nil }
    return base.load(fromByteOffset: Int(address), as: UInt8.self)
  }

  /// Zeroes every page written since the last call.
  func clear() {
    for page in dirtyPages { (base + page << 12).initializeMemory(as: UInt8.self, repeating: 0, count: 4096) }
    dirtyPages.removeAll(keepingCapacity: true)
  }
}

/// The BIOS INT 15h/E820 memory map the loaders hand to kernels (Linux zero page, Multiboot
/// mmap), derived from the guest's RAM regions the way a PC BIOS reports it:
///
/// - `[0, 0x9FC00)` usable (conventional memory below the 1 KiB extended BIOS data area),
/// - `[0x9FC00, 0xA0000)` reserved (EBDA) and `[0xF0000, 0x100000)` reserved (BIOS ROM),
/// - `[1 MiB, min(RAM, 3 GiB))` usable, and RAM above 3 GiB usable from 4 GiB on.
public struct E820Entry: Sendable, Equatable {
  /// The E820 type: 1 usable RAM, 2 reserved.
  public enum Kind: UInt32, Sendable {
    case usable = 1
    case reserved = 2
  }
  /// The first byte.
  public var address: UInt64
  /// The length in bytes.
  public var length: UInt64
  /// Usable or reserved.
  public var kind: Kind
  /// An entry of `length` bytes at `address`.
  public init(address: UInt64, length: UInt64, kind: Kind) {
    self.address = address
    self.length = length
    self.kind = kind
  }
  /// The first byte after the entry.
  public var end: UInt64 { address + length }
}

/// Builds the E820 map of a guest's RAM (see `E820Entry`).
public enum E820Map {
  /// Where the extended BIOS data area starts (reserved from here to 640 KiB).
  public static let ebdaStart: UInt64 = 0x9FC00
  /// Where the BIOS ROM area starts (reserved to 1 MiB).
  public static let biosStart: UInt64 = 0xF0000
  /// The first byte of extended memory (1 MiB).
  public static let highMemoryStart: UInt64 = 0x10_0000

  /// The map for `memory`'s RAM regions.
  public static func entries(for memory: GuestMemory) -> [E820Entry] {
    var out: [E820Entry] = []
    for r in memory.regions where r.kind == .ram {
      if r.guestAddress < highMemoryStart {
        let lowEnd = min(r.end, ebdaStart)
        if lowEnd > r.guestAddress {
          out.append(E820Entry(address: r.guestAddress, length: lowEnd - r.guestAddress, kind: .usable))
        }
        if r.end > ebdaStart {
          out.append(E820Entry(address: ebdaStart, length: 0xA0000 - ebdaStart, kind: .reserved))
        }
        if r.end > highMemoryStart {
          out.append(E820Entry(address: biosStart, length: highMemoryStart - biosStart, kind: .reserved))
          out.append(E820Entry(address: highMemoryStart, length: r.end - highMemoryStart, kind: .usable))
        }
      } else {
        out.append(E820Entry(address: r.guestAddress, length: r.size, kind: .usable))
      }
    }
    return out
  }

  /// Contiguous usable KiB from 1 MiB (Multiboot `mem_upper`).
  public static func upperMemoryKiB(for memory: GuestMemory) -> UInt64 {
    guard let r = memory.region(containing: highMemoryStart), r.kind == .ram else { return 0 }
    return (r.end - highMemoryStart) / 1024
  }

  /// The highest usable address below 4 GiB plus one (where initrds go under).
  static func lowRAMEnd(for memory: GuestMemory) -> UInt64 {
    memory.regions.filter { $0.kind == .ram && $0.end <= GuestMemory.mmioHoleEnd }.map(\.end).max() ?? 0
  }
}

extension E820Map {
  /// The map for `memory`'s RAM regions with every range of `reserved` reported as reserved:
  /// usable entries are cut around them, and reserved entries that touch or overlap are merged
  /// (so the platform tables' 0xE0000-0xEFFFF joins the BIOS area into one 0xE0000-0xFFFFF
  /// entry). Entries come out sorted by address.
  public static func entries(for memory: GuestMemory, reserving reserved: [Range<UInt64>]) -> [E820Entry] {
    var map = entries(for: memory)
    for r in reserved where !r.isEmpty {
      var next: [E820Entry] = []
      for e in map {
        guard e.kind == .usable, e.address < r.upperBound, r.lowerBound < e.end else {
          next.append(e)
          continue
        }
        if e.address < r.lowerBound {
          next.append(E820Entry(address: e.address, length: r.lowerBound - e.address, kind: .usable))
        }
        if r.upperBound < e.end {
          next.append(E820Entry(address: r.upperBound, length: e.end - r.upperBound, kind: .usable))
        }
      }
      next.append(E820Entry(address: r.lowerBound, length: r.upperBound - r.lowerBound, kind: .reserved))
      map = next
    }
    map.sort { $0.address < $1.address }
    var merged: [E820Entry] = []
    for e in map {
      if let last = merged.last, last.kind == .reserved, e.kind == .reserved, e.address <= last.end {
        merged[merged.count - 1].length = max(last.end, e.end) - last.address
      } else {
        merged.append(e)
      }
    }
    return merged
  }
}

/// Builders for the guest images loader tests feed in: ELF files, Multiboot headers, bzImages.
enum TestImages {
  struct Segment {
    var physicalAddress: UInt64
    var virtualAddress: UInt64
    var data: [UInt8]
    var memorySize: UInt64
    var type: UInt32 = 1
    var flags: UInt32 = 5

    init(at address: UInt64, data: [UInt8], memorySize: UInt64? = nil, virtualAddress: UInt64? = nil) {
      physicalAddress = address
      self.virtualAddress = virtualAddress ?? address
      self.data = data
      self.memorySize = memorySize ?? UInt64(data.count)
    }
  }

  static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

  static func put<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ offset: Int, _ v: T) {
    for (i, b) in le(v).enumerated() { bytes[offset + i] = b }
  }

  /// An ELF executable: header, program headers, then each segment's data (16-byte aligned).
  static func elf(
    is64: Bool = true, machine: UInt16? = nil, type: UInt16 = 2, entry: UInt64, segments: [Segment]
  ) -> [UInt8] {
    let headerSize = is64 ? 64 : 52
    let phSize = is64 ? 56 : 32
    var out = [UInt8](repeating: 0, count: headerSize + phSize * segments.count)
    out[0...3] = [0x7F, 0x45, 0x4C, 0x46]
    out[4] = is64 ? 2 : 1
    out[5] = 1
    out[6] = 1
    put(&out, 16, type)
    put(&out, 18, machine ?? (is64 ? 62 : 3))
    put(&out, 20, UInt32(1))
    if is64 {
      put(&out, 24, entry)
      put(&out, 32, UInt64(headerSize))
      put(&out, 52, UInt16(headerSize))
      put(&out, 54, UInt16(phSize))
      put(&out, 56, UInt16(segments.count))
    } else {
      put(&out, 24, UInt32(entry))
      put(&out, 28, UInt32(headerSize))
      put(&out, 40, UInt16(headerSize))
      put(&out, 42, UInt16(phSize))
      put(&out, 44, UInt16(segments.count))
    }
    for (i, s) in segments.enumerated() {
      while out.count % 16 != 0 { out.append(0) }
      let offset = out.count
      out += s.data
      let ph = headerSize + i * phSize
      put(&out, ph, s.type)
      if is64 {
        put(&out, ph + 4, s.flags)
        put(&out, ph + 8, UInt64(offset))
        put(&out, ph + 16, s.virtualAddress)
        put(&out, ph + 24, s.physicalAddress)
        put(&out, ph + 32, UInt64(s.data.count))
        put(&out, ph + 40, s.memorySize)
        put(&out, ph + 48, UInt64(16))
      } else {
        put(&out, ph + 4, UInt32(offset))
        put(&out, ph + 8, UInt32(truncatingIfNeeded: s.virtualAddress))
        put(&out, ph + 12, UInt32(truncatingIfNeeded: s.physicalAddress))
        put(&out, ph + 16, UInt32(s.data.count))
        put(&out, ph + 20, UInt32(truncatingIfNeeded: s.memorySize))
        put(&out, ph + 24, s.flags)
        put(&out, ph + 28, UInt32(16))
      }
    }
    return out
  }

  /// A Multiboot v1 header; with `addresses`, flag bit 16 and the a.out kludge fields.
  static func multibootHeader(
    flags: UInt32 = 0x3,
    addresses: (header: UInt32, load: UInt32, loadEnd: UInt32, bssEnd: UInt32, entry: UInt32)? = nil,
    badChecksum: Bool = false
  ) -> [UInt8] {
    let f = addresses == nil ? flags : flags | 0x1_0000
    var out = le(UInt32(0x1BAD_B002)) + le(f) + le(UInt32(0) &- 0x1BAD_B002 &- f &+ (badChecksum ? 1 : 0))
    if let a = addresses {
      out += le(a.header) + le(a.load) + le(a.loadEnd) + le(a.bssEnd) + le(a.entry)
    }
    return out
  }

  /// A 32-bit Multiboot ELF kernel at 1 MiB: the header, then `code`, then `bss` zero bytes.
  static func multibootELF(code: [UInt8] = [0xF4], bss: UInt64 = 0x1000, machine: UInt16? = nil) -> [UInt8] {
    let data = multibootHeader() + code
    return elf(
      is64: false, machine: machine, entry: 0x10_000C,
      segments: [Segment(at: 0x10_0000, data: data, memorySize: UInt64(data.count) + bss)])
  }

  /// A raw Multiboot kernel using the address fields: loaded at 0x200000, header at its start.
  static func multibootKludge(payload: [UInt8] = [0x90, 0xF4], bss: UInt32 = 0x100) -> [UInt8] {
    let load: UInt32 = 0x20_0000
    let total = UInt32(32 + payload.count)
    let header = multibootHeader(
      addresses: (header: load, load: load, loadEnd: load + total, bssEnd: load + total + bss, entry: load + 32))
    return header + payload
  }

  /// A minimal bzImage: one setup sector after the boot sector, then `kernel` as the
  /// protected-mode part.
  static func bzImage(
    kernel: [UInt8] = [UInt8](repeating: 0x90, count: 0x400), version: UInt16 = 0x020F, xloadflags: UInt16 = 0x3,
    initSize: UInt32 = 0x10_0000, prefAddress: UInt64 = 0x100_0000, cmdlineSize: UInt32 = 2047,
    initrdAddressMax: UInt32 = 0x7FFF_FFFF
  ) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 1024)
    out[0x1F1] = 1  // setup_sects
    put(&out, 0x1FE, UInt16(0xAA55))
    out[0x200] = 0xEB
    out[0x201] = 0x6A  // header ends at 0x26C
    put(&out, 0x202, UInt32(0x5372_6448))
    put(&out, 0x206, version)
    out[0x211] = 0x01  // LOADED_HIGH
    put(&out, 0x22C, initrdAddressMax)
    put(&out, 0x230, UInt32(0x20_0000))
    out[0x234] = 1
    put(&out, 0x236, xloadflags)
    put(&out, 0x238, cmdlineSize)
    put(&out, 0x258, prefAddress)
    put(&out, 0x260, initSize)
    return out + kernel
  }
}

/// A deterministic pseudo-random generator for fuzz tests (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

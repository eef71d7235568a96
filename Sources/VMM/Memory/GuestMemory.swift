#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why a guest-physical access or a memory layout request failed.
public enum MemoryError: Error, Equatable, CustomStringConvertible {
  /// The range `[address, address+length)` is not backed by RAM or ROM.
  case unbacked(address: UInt64, length: UInt64)
  /// A write hit a read-only region.
  case readOnly(address: UInt64)
  /// The host could not give us the memory (`mmap` failed with `errno`).
  case allocationFailed(size: UInt64, errno: Int32)
  /// A size that no guest can have (zero, not page aligned, or beyond the supported maximum).
  case invalidSize(UInt64, reason: String)
  /// Two regions would overlap.
  case overlap(address: UInt64, size: UInt64)

  /// The problem in one line.
  public var description: String {
    switch self {
    case .unbacked(let a, let l):
      return "guest-physical range 0x\(String(a, radix: 16))+0x\(String(l, radix: 16)) is not backed by memory"
    case .readOnly(let a): return "write to read-only guest memory at 0x\(String(a, radix: 16))"
    case .allocationFailed(let s, let e):
      return "cannot allocate \(s >> 20) MiB of guest memory: \(String(cString: strerror(e)))"
    case .invalidSize(let s, let r): return "invalid memory size \(s): \(r)"
    case .overlap(let a, let s):
      return "memory region 0x\(String(a, radix: 16))+0x\(String(s, radix: 16)) overlaps another region"
    }
  }
}

/// One contiguous piece of guest-physical address space backed by host memory.
public struct MemoryRegion: Sendable {
  /// Writable RAM, or ROM (guest writes are MMIO exits).
  public enum Kind: Sendable { case ram, rom }
  /// First guest-physical address.
  public let guestAddress: UInt64
  /// Length in bytes (a multiple of the page size).
  public let size: UInt64
  /// Host virtual address of the first byte (page aligned, from `mmap`).
  public nonisolated(unsafe) let host: UnsafeMutableRawPointer
  /// RAM or ROM.
  public let kind: Kind

  /// The first guest-physical address after the region.
  public var end: UInt64 { guestAddress + size }
  /// Whether `[address, address + length)` lies inside the region.
  public func contains(_ address: UInt64, length: UInt64 = 1) -> Bool {
    address >= guestAddress && length <= size && address - guestAddress <= size - length
  }
}

/// The guest's physical memory: RAM and ROM regions mapped from the host, with holes between them
/// for MMIO. Every access through this type is bounds checked; engines that need raw speed take a
/// region's host pointer once and check bounds themselves.
///
/// RAM layout: `[0, min(ram, 3 GiB))`, and anything above 3 GiB continues at 4 GiB, leaving
/// `[3 GiB, 4 GiB)` for MMIO and firmware the way PC chipsets do.
public final class GuestMemory: @unchecked Sendable {
  /// The granularity of regions and host pointers.
  public static let pageSize: UInt64 = 4096
  /// Start of the 32-bit MMIO hole.
  public static let mmioHoleStart: UInt64 = 0xC000_0000
  /// The end of the PCI hole below 4 GiB: RAM beyond the hole continues here.
  public static let mmioHoleEnd: UInt64 = 0x1_0000_0000
  /// The largest RAM size we accept (1 TiB); anything larger is surely a typo.
  public static let maximumRAM: UInt64 = 1 << 40

  /// The mapped regions, sorted by guest address.
  public private(set) var regions: [MemoryRegion] = []
  /// Total RAM in bytes, as requested.
  public let ramSize: UInt64
  /// Which pages hold code cached by a software engine; every write through this type notes itself
  /// there, so a loader or device writing over code invalidates it on every vCPU.
  public let codeWrites = CodeWriteTracker()

  /// Maps `ramSize` bytes of zeroed RAM.
  public init(ramSize: UInt64) throws(MemoryError) {
    guard ramSize > 0 else { throw .invalidSize(ramSize, reason: "must be greater than zero") }
    guard ramSize % Self.pageSize == 0 else {
      throw .invalidSize(ramSize, reason: "must be a multiple of 4 KiB")
    }
    guard ramSize <= Self.maximumRAM else { throw .invalidSize(ramSize, reason: "larger than 1 TiB") }
    self.ramSize = ramSize
    let low = min(ramSize, Self.mmioHoleStart)
    try addRegion(at: 0, size: low, kind: .ram)
    if ramSize > low { try addRegion(at: Self.mmioHoleEnd, size: ramSize - low, kind: .ram) }
  }

  deinit {
    for r in regions { munmap(r.host, Int(r.size)) }
  }

  /// Maps `bytes` read-only at `address` (a firmware image). Its length is rounded up to a page.
  @discardableResult
  public func addROM(at address: UInt64, bytes: [UInt8]) throws(MemoryError) -> MemoryRegion {
    let size = (UInt64(bytes.count) + Self.pageSize - 1) & ~(Self.pageSize - 1)
    let region = try addRegion(at: address, size: size, kind: .rom)
    bytes.withUnsafeBytes { region.host.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    return region
  }

  /// `addROM`, or, when exactly that ROM region is mapped already (the machine is rebooting and
  /// loads its firmware again), a refresh of its contents.
  @discardableResult
  public func loadROM(at address: UInt64, bytes: [UInt8]) throws(MemoryError) -> MemoryRegion {
    let size = (UInt64(bytes.count) + Self.pageSize - 1) & ~(Self.pageSize - 1)
    guard let r = regions.first(where: { $0.kind == .rom && $0.guestAddress == address && $0.size == size }) else {
      return try addROM(at: address, bytes: bytes)
    }
    bytes.withUnsafeBytes { r.host.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    codeWrites.noteWrite(physical: address, length: size)
    return r
  }

  @discardableResult
  private func addRegion(at address: UInt64, size: UInt64, kind: MemoryRegion.Kind) throws(MemoryError)
    -> MemoryRegion
  {
    guard size > 0, address % Self.pageSize == 0 else {
      throw .invalidSize(size, reason: "region must be non-empty and page aligned")
    }
    guard address &+ size >= address else { throw .overlap(address: address, size: size) }
    for r in regions where address < r.end && r.guestAddress < address + size {
      throw .overlap(address: address, size: size)
    }
    let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    guard let p, p != MAP_FAILED else { throw .allocationFailed(size: size, errno: errno) }
    let region = MemoryRegion(guestAddress: address, size: size, host: p, kind: kind)
    regions.append(region)
    regions.sort { $0.guestAddress < $1.guestAddress }
    return region
  }

  /// The region holding all of `[address, address+length)`, if one does.
  @inline(__always)
  public func region(containing address: UInt64, length: UInt64 = 1) -> MemoryRegion? {
    for r in regions where r.contains(address, length: length) { return r }
    return nil
  }

  /// Host pointer to `length` bytes at `address`, when one region backs them all.
  public func hostPointer(_ address: UInt64, length: UInt64 = 1) -> UnsafeMutableRawPointer? {
    guard let r = region(containing: address, length: length) else { return nil }
    return r.host + Int(address - r.guestAddress)
  }

  /// True if every byte of the range is RAM or ROM (not MMIO, not a hole).
  public func isBacked(_ address: UInt64, length: UInt64) -> Bool {
    region(containing: address, length: length) != nil
  }

  /// Copies guest bytes at `address` into `buffer`; throws when any byte is unmapped.
  public func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(MemoryError) {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    guard let p = hostPointer(address, length: UInt64(buffer.count)) else {
      throw .unbacked(address: address, length: UInt64(buffer.count))
    }
    base.copyMemory(from: p, byteCount: buffer.count)
  }

  /// `count` guest bytes at `address`.
  public func read(_ address: UInt64, count: Int) throws(MemoryError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var failure: MemoryError?
    out.withUnsafeMutableBytes { buf in
      do throws(MemoryError) { try read(address, into: buf) } catch { failure = error }
    }
    if let failure { throw failure }
    return out
  }

  /// Writes host bytes into guest RAM (ROM regions refuse the write: loaders use `addROM`).
  public func write(_ address: UInt64, bytes: UnsafeRawBufferPointer) throws(MemoryError) {
    guard let src = bytes.baseAddress, bytes.count > 0 else { return }
    guard let r = region(containing: address, length: UInt64(bytes.count)) else {
      throw .unbacked(address: address, length: UInt64(bytes.count))
    }
    guard r.kind == .ram else { throw .readOnly(address: address) }
    (r.host + Int(address - r.guestAddress)).copyMemory(from: src, byteCount: bytes.count)
    codeWrites.noteWrite(physical: address, length: UInt64(bytes.count))
  }

  /// Copies `bytes` to guest RAM or ROM at `address` (the VMM may write ROM); throws when any byte is
  /// unmapped.
  public func write(_ address: UInt64, bytes: [UInt8]) throws(MemoryError) {
    var failure: MemoryError?
    bytes.withUnsafeBytes { buf in
      do throws(MemoryError) { try write(address, bytes: buf) } catch { failure = error }
    }
    if let failure { throw failure }
  }

  /// A little-endian integer at `address`.
  public func read<T: FixedWidthInteger>(_: T.Type, at address: UInt64) throws(MemoryError) -> T {
    guard let p = hostPointer(address, length: UInt64(MemoryLayout<T>.size)) else {
      throw .unbacked(address: address, length: UInt64(MemoryLayout<T>.size))
    }
    return T(littleEndian: p.loadUnaligned(as: T.self))
  }

  /// Stores a little-endian integer at `address`.
  public func write<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(MemoryError) {
    guard let r = region(containing: address, length: UInt64(MemoryLayout<T>.size)) else {
      throw .unbacked(address: address, length: UInt64(MemoryLayout<T>.size))
    }
    guard r.kind == .ram else { throw .readOnly(address: address) }
    (r.host + Int(address - r.guestAddress)).storeBytes(of: value.littleEndian, as: T.self)
    codeWrites.noteWrite(physical: address, length: UInt64(MemoryLayout<T>.size))
  }

  /// Zeroes `[address, address+length)`.
  public func fill(_ address: UInt64, length: UInt64, byte: UInt8 = 0) throws(MemoryError) {
    guard length > 0 else { return }
    guard let r = region(containing: address, length: length) else {
      throw .unbacked(address: address, length: length)
    }
    guard r.kind == .ram else { throw .readOnly(address: address) }
    memset(r.host + Int(address - r.guestAddress), Int32(byte), Int(length))
    codeWrites.noteWrite(physical: address, length: length)
  }
}

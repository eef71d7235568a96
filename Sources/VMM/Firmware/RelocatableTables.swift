/// Firmware tables as relocatable files: the bytes of each file with pointer fields holding
/// offsets into a target file, plus the list of those pointers and of the checksums to compute
/// once the pointers are final.
///
/// It is the model of fw_cfg's linker/loader interface ("etc/table-loader"): firmware allocates
/// each file, adds the allocated address of the target file to every pointer field, then fixes
/// every checksum. `link(bases:)` does the same for the VMM when it places the tables itself at
/// fixed addresses; `loaderCommands()` writes the command list for firmware. Checksum bytes are
/// left zero in the files: "subtract the sum of the range" then gives the right value whether a
/// loader adjusts the existing byte or overwrites it.
public struct RelocatableTables: Sendable, Equatable {
  /// Where firmware may allocate a file.
  public enum Zone: UInt8, Sendable {
    /// Anywhere in RAM below 4 GiB (SeaBIOS: high memory under the 4 GiB boundary).
    case high = 1
    /// The F segment (0xF0000-0xFFFFF), where legacy scans look for the ACPI RSDP.
    case fSegment = 2
  }

  /// One file: fw_cfg name, contents, alignment and zone.
  public struct File: Sendable, Equatable {
    /// The fw_cfg file name (at most 55 bytes).
    public var name: String
    /// The contents, pointer fields holding offsets into their target file.
    public var bytes: [UInt8]
    /// The required alignment of the file's address (a power of two).
    public var alignment: UInt32
    /// Where firmware may allocate it.
    public var zone: Zone
  }

  /// A pointer field: `size` bytes at `offset` in `file` that hold an offset into `target` and
  /// must become the address of that byte.
  public struct Pointer: Sendable, Equatable {
    /// The file that holds the field.
    public var file: String
    /// The field's offset in `file`.
    public var offset: Int
    /// The field's width in bytes (1, 2, 4 or 8).
    public var size: Int
    /// The file the field points into.
    public var target: String
  }

  /// A checksum byte: the byte at `offset` in `file` is adjusted so that `range` sums to zero.
  public struct Checksum: Sendable, Equatable {
    /// The file that holds the checksum.
    public var file: String
    /// The checksum byte's offset in `file`.
    public var offset: Int
    /// The bytes of `file` the checksum covers.
    public var range: Range<Int>
  }

  /// The files, in allocation order.
  public private(set) var files: [File] = []
  /// The pointer fields, applied in order before any checksum.
  public private(set) var pointers: [Pointer] = []
  /// The checksums, computed in order after every pointer.
  public private(set) var checksums: [Checksum] = []

  /// No files.
  public init() {}

  /// The file named `name`.
  public func file(named name: String) -> File? { files.first { $0.name == name } }

  /// Adds an empty file.
  mutating func addFile(_ name: String, alignment: UInt32, zone: Zone) {
    precondition(file(named: name) == nil && name.utf8.count <= FwCfg.maximumNameLength)
    files.append(File(name: name, bytes: [], alignment: alignment, zone: zone))
  }

  /// Appends `bytes` to file `name` at the next multiple of `alignment` and returns their offset.
  mutating func append(_ bytes: [UInt8], to name: String, alignment: Int = 1) -> Int {
    let i = files.firstIndex { $0.name == name }!
    let rest = files[i].bytes.count % alignment
    if rest != 0 { files[i].bytes += [UInt8](repeating: 0, count: alignment - rest) }
    let offset = files[i].bytes.count
    files[i].bytes += bytes
    return offset
  }

  /// Records a pointer field (its bytes already hold the offset into `target`).
  mutating func addPointer(in file: String, at offset: Int, size: Int, to target: String) {
    pointers.append(Pointer(file: file, offset: offset, size: size, target: target))
  }

  /// Records a checksum byte over `range` of `file`.
  mutating func addChecksum(in file: String, at offset: Int, over range: Range<Int>) {
    checksums.append(Checksum(file: file, offset: offset, range: range))
  }

  /// The files' bytes once each file `name` sits at `bases[name]`: pointers relocated, then
  /// checksums fixed, exactly as firmware's loader does. Every file needs a base.
  public func link(bases: [String: UInt64]) -> [String: [UInt8]] {
    var out: [String: TableBytes] = [:]
    for f in files {
      var t = TableBytes()
      t.raw(f.bytes)
      out[f.name] = t
    }
    for p in pointers {
      let value = out[p.file]!.read(at: p.offset, size: p.size) &+ bases[p.target]!
      for i in 0..<p.size {
        out[p.file]!.put(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))), at: p.offset + i)
      }
    }
    for c in checksums { out[c.file]!.fixChecksum(at: c.offset, over: c.range) }
    return out.mapValues(\.bytes)
  }

  /// The size of one linker/loader command.
  public static let commandSize = 128
  /// The linker/loader command numbers.
  public enum Command: UInt32, Sendable {
    /// Allocate a file: name (56 bytes), alignment (u32), zone (u8).
    case allocate = 1
    /// Relocate a pointer: destination file (56), source file (56), offset (u32), size (u8).
    case addPointer = 2
    /// Fix a checksum: file (56), checksum offset (u32), start (u32), length (u32).
    case addChecksum = 3
  }

  /// The "etc/table-loader" contents: 128-byte little-endian commands, ALLOCATE for each file,
  /// then ADD_POINTER for each pointer, then ADD_CHECKSUM for each checksum. File names are
  /// NUL-padded to 56 bytes.
  public func loaderCommands() -> [UInt8] {
    var out = TableBytes()
    func command(_ c: Command, _ body: (inout TableBytes) -> Void) {
      let start = out.count
      out.u32(c.rawValue)
      body(&out)
      out.zeros(start + Self.commandSize - out.count)
    }
    for f in files {
      command(.allocate) {
        $0.ascii(f.name, width: 56, pad: 0)
        $0.u32(f.alignment)
        $0.u8(f.zone.rawValue)
      }
    }
    for p in pointers {
      command(.addPointer) {
        $0.ascii(p.file, width: 56, pad: 0)
        $0.ascii(p.target, width: 56, pad: 0)
        $0.u32(UInt32(p.offset))
        $0.u8(UInt8(p.size))
      }
    }
    for c in checksums {
      command(.addChecksum) {
        $0.ascii(c.file, width: 56, pad: 0)
        $0.u32(UInt32(c.offset))
        $0.u32(UInt32(c.range.lowerBound))
        $0.u32(UInt32(c.range.count))
      }
    }
    return out.bytes
  }
}

/// The 512 bytes an ATA disk returns for IDENTIFY DEVICE (ATA/ATAPI-7 layout, 256 little-endian
/// words), describing what `ATADrive` implements and nothing more: LBA28 and LBA48, PIO modes 0-4,
/// READ/WRITE MULTIPLE up to `maximumMultiple` sectors, a write cache with FLUSH CACHE (EXT).
/// No DMA of any kind is advertised (the controller has no bus master), so guests use PIO.
enum ATAIdentifyData {
  /// The largest READ/WRITE MULTIPLE block, in sectors (word 47).
  static let maximumMultiple = 16

  /// The default CHS geometry of a disk of `sectors` sectors (words 1, 3, 6): 16 heads, 63
  /// sectors per track, as many cylinders as fit, at most 16,383 (larger disks are addressed by
  /// LBA; CHS then covers their first 8 GB).
  static func defaultGeometry(sectors: UInt64) -> (cylinders: Int, heads: Int, sectorsPerTrack: Int) {
    (Int(min(sectors / (16 * 63), 16383)), 16, 63)
  }

  /// The IDENTIFY DEVICE data of drive `unit` (0-3, for its serial number) with `sectors`
  /// sectors, the current CHS translation and READ/WRITE MULTIPLE setting (0: off).
  static func make(
    unit: Int, sectors: UInt64, heads: Int, sectorsPerTrack: Int, multiple: Int
  ) -> [UInt8] {
    var w = [UInt16](repeating: 0, count: 256)
    let geometry = defaultGeometry(sectors: sectors)
    w[0] = 0x0040  // ATA device, fixed (not removable)
    w[1] = UInt16(geometry.cylinders)
    w[3] = UInt16(geometry.heads)
    w[6] = UInt16(geometry.sectorsPerTrack)
    put(&w, 10, 20, "TRIVISOR-ATA-\(unit)")  // serial number
    put(&w, 23, 8, "1.0")  // firmware revision
    put(&w, 27, 40, "Trivisor ATA disk")  // model number
    w[47] = 0x8000 | UInt16(maximumMultiple)
    w[49] = 0x0200  // LBA supported (no DMA)
    w[50] = 0x4000
    w[51] = 0x0200  // PIO data transfer cycle timing mode (obsolete field, mode 2)
    w[53] = 0x0003  // words 54-58 and 64-70 are valid
    // The current CHS translation (INITIALIZE DEVICE PARAMETERS changes heads and sectors).
    let currentCylinders = heads > 0 && sectorsPerTrack > 0 ? min(sectors / UInt64(heads * sectorsPerTrack), 65535) : 0
    let chsCapacity = currentCylinders * UInt64(heads) * UInt64(sectorsPerTrack)
    w[54] = UInt16(currentCylinders)
    w[55] = UInt16(heads)
    w[56] = UInt16(sectorsPerTrack)
    w[57] = UInt16(truncatingIfNeeded: chsCapacity)
    w[58] = UInt16(truncatingIfNeeded: chsCapacity >> 16)
    w[59] = multiple > 0 ? 0x0100 | UInt16(multiple) : 0
    let lba28 = min(sectors, 0x0FFF_FFFF)
    w[60] = UInt16(truncatingIfNeeded: lba28)
    w[61] = UInt16(truncatingIfNeeded: lba28 >> 16)
    w[64] = 0x0003  // advanced PIO modes 3 and 4
    w[65] = 120  // cycle times in ns (PIO mode 4)
    w[66] = 120
    w[67] = 120
    w[68] = 120
    w[80] = 0x00F0  // ATA/ATAPI-4 to -7
    w[82] = 0x0020  // write cache
    w[83] = 0x7400  // valid; FLUSH CACHE EXT, FLUSH CACHE, 48-bit addresses
    w[84] = 0x4000
    w[85] = 0x0020  // write cache enabled
    w[86] = 0x3400
    w[87] = 0x4000
    w[93] = 0x400B  // hardware reset result: device 0, by jumper, diagnostics passed
    for i in 0..<4 { w[100 + i] = UInt16(truncatingIfNeeded: sectors >> (16 * UInt64(i))) }
    var bytes = [UInt8](repeating: 0, count: 512)
    for i in 0..<256 {
      bytes[2 * i] = UInt8(truncatingIfNeeded: w[i])
      bytes[2 * i + 1] = UInt8(truncatingIfNeeded: w[i] >> 8)
    }
    return bytes
  }

  /// An ATA string: `length` ASCII bytes padded with spaces, two per word, first character in
  /// the word's high byte.
  private static func put(_ w: inout [UInt16], _ first: Int, _ length: Int, _ text: String) {
    var chars = Array(text.utf8.prefix(length))
    chars += [UInt8](repeating: 0x20, count: length - chars.count)
    for i in 0..<(length / 2) { w[first + i] = UInt16(chars[2 * i]) << 8 | UInt16(chars[2 * i + 1]) }
  }
}

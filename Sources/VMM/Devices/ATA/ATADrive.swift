/// One ATA hard disk on an IDE channel, backed by a raw image file (`DiskImage`): its status and
/// error registers, the PIO data buffer, and the commands a PC BIOS and an operating system's ATA
/// driver use. Every command completes at once (the device is never seen busy); the channel
/// (`IDEChannel`) owns the shared registers and the interrupt line and calls in here.
///
/// Commands: IDENTIFY DEVICE; READ/WRITE SECTORS, MULTIPLE and their 48-bit EXT forms (PIO data
/// in and out, one DRQ block per sector or per multiple-mode block, by LBA or by CHS through the
/// current translation); READ VERIFY SECTORS (EXT); SET MULTIPLE MODE; SET FEATURES (write cache,
/// look-ahead, PIO transfer modes); INITIALIZE DEVICE PARAMETERS; FLUSH CACHE (EXT); RECALIBRATE;
/// SEEK; CHECK POWER MODE and the idle/standby/sleep commands. Everything else (DMA commands, the
/// packet commands of an ATAPI device, SMART, NOP) aborts with ERR and ABRT, as a disk without that
/// feature set does. A sector range outside the image aborts with IDNF; a host I/O error with
/// UNC (read) or DF and ABRT (write); a write to a read-only image with ABRT.
final class ATADrive {
  /// Status register bits.
  enum Status {
    static let busy: UInt8 = 0x80
    static let ready: UInt8 = 0x40
    static let deviceFault: UInt8 = 0x20
    static let seekComplete: UInt8 = 0x10
    static let dataRequest: UInt8 = 0x08
    static let error: UInt8 = 0x01
  }

  /// Error register bits.
  enum ErrorBit {
    static let uncorrectable: UInt8 = 0x40
    static let idNotFound: UInt8 = 0x10
    static let aborted: UInt8 = 0x04
  }

  /// The backing image.
  let image: DiskImage
  /// The drive's position on the controller (0-3), for its serial number.
  let unit: Int
  /// Status register.
  private(set) var status: UInt8 = Status.ready | Status.seekComplete
  /// Error register (after a reset: 0x01, diagnostics passed).
  private(set) var error: UInt8 = 0x01
  /// Sectors per READ/WRITE MULTIPLE block (0: multiple mode off).
  private var multiple = 0
  /// The CHS translation (INITIALIZE DEVICE PARAMETERS).
  private var heads: Int
  private var sectorsPerTrack: Int
  /// Sectors and bytes moved for the guest.
  private(set) var sectorsRead: UInt64 = 0
  private(set) var sectorsWritten: UInt64 = 0

  /// A PIO transfer in progress.
  private enum Phase {
    case idle
    /// IDENTIFY data waiting to be read.
    case identify
    /// Sectors from `next` on, `remaining` of them (the current block included), `block` per DRQ
    /// block; `lba48` for the register update on error.
    case dataIn(next: UInt64, remaining: Int, block: Int, lba48: Bool)
    /// Sectors to `next` on, as for `dataIn`.
    case dataOut(next: UInt64, remaining: Int, block: Int, lba48: Bool)
  }
  private var phase = Phase.idle
  private var buffer = [UInt8](repeating: 0, count: ATAIdentifyData.maximumMultiple * DiskImage.sectorSize)
  private var position = 0
  private var length = 0

  init(image: DiskImage, unit: Int) {
    self.image = image
    self.unit = unit
    let g = ATAIdentifyData.defaultGeometry(sectors: image.sectorCount)
    heads = g.heads
    sectorsPerTrack = g.sectorsPerTrack
  }

  /// Power-on or software reset: idle, ready, diagnostics passed, default translation, multiple
  /// mode off.
  func reset() {
    phase = .idle
    position = 0
    length = 0
    status = Status.ready | Status.seekComplete
    error = 0x01
    multiple = 0
    let g = ATAIdentifyData.defaultGeometry(sectors: image.sectorCount)
    heads = g.heads
    sectorsPerTrack = g.sectorsPerTrack
  }

  /// Whether a data transfer is waiting for the host (DRQ).
  var wantsData: Bool { status & Status.dataRequest != 0 }

  // MARK: Commands

  /// Runs `command` with the registers in `taskFile` (which it may update); returns whether the
  /// device asks for an interrupt now.
  func execute(_ command: UInt8, _ taskFile: inout ATATaskFile) -> Bool {
    phase = .idle
    position = 0
    length = 0
    switch command {
    case 0xEC:  // IDENTIFY DEVICE
      let data = ATAIdentifyData.make(
        unit: unit, sectors: image.sectorCount, heads: heads, sectorsPerTrack: sectorsPerTrack, multiple: multiple)
      buffer.replaceSubrange(0..<512, with: data)
      length = 512
      phase = .identify
      status = Status.ready | Status.seekComplete | Status.dataRequest
      error = 0
      return true
    case 0x20, 0x21, 0x24, 0xC4, 0x29:  // READ SECTORS (EXT), READ MULTIPLE (EXT)
      return startTransfer(command, &taskFile, write: false)
    case 0x30, 0x31, 0x34, 0xC5, 0x39:  // WRITE SECTORS (EXT), WRITE MULTIPLE (EXT)
      return startTransfer(command, &taskFile, write: true)
    case 0x40, 0x41, 0x42:  // READ VERIFY SECTORS (EXT)
      let lba48 = command == 0x42
      return sectors(&taskFile, lba48: lba48) == nil ? abort(ErrorBit.idNotFound) : complete()
    case 0xC6:  // SET MULTIPLE MODE
      let n = Int(taskFile.count)
      guard n <= ATAIdentifyData.maximumMultiple, n & (n - 1) == 0 else { return abort() }
      multiple = n
      return complete()
    case 0x91:  // INITIALIZE DEVICE PARAMETERS
      sectorsPerTrack = Int(taskFile.count)
      heads = Int(taskFile.device & 0x0F) + 1
      return complete()
    case 0xEF:  // SET FEATURES
      switch taskFile.features {
      case 0x02, 0x82, 0x55, 0xAA, 0x66, 0xCC:  // write cache, read look-ahead, revert to defaults
        return complete()
      case 0x03:  // set transfer mode: PIO default, PIO mode 0-4 (no DMA here)
        let mode = taskFile.count
        return mode <= 0x01 || (0x08...0x0C).contains(mode) ? complete() : abort()
      default:
        return abort()
      }
    case 0xE7, 0xEA:  // FLUSH CACHE (EXT)
      return image.flush() ? complete() : abort()
    case 0x10...0x1F, 0x70:  // RECALIBRATE, SEEK
      return complete()
    case 0xE5:  // CHECK POWER MODE: active or idle
      taskFile.count = 0xFF
      return complete()
    case 0xE0, 0xE1, 0xE2, 0xE3, 0xE6:  // STANDBY/IDLE (IMMEDIATE), SLEEP
      return complete()
    default:
      return abort()
    }
  }

  /// The first sector and count a read/write/verify command addresses, or nil when they are not
  /// all on the disk (or the CHS address is invalid).
  private func sectors(_ taskFile: inout ATATaskFile, lba48: Bool) -> (first: UInt64, count: Int)? {
    let count = lba48 ? taskFile.count48 : taskFile.count28
    let first: UInt64
    if lba48 {
      first = taskFile.lba48
    } else if taskFile.usesLBA {
      first = taskFile.lba28
    } else {
      let cylinder = UInt64(taskFile.lbaMid) | UInt64(taskFile.lbaHigh) << 8
      let head = UInt64(taskFile.device & 0x0F)
      let sector = UInt64(taskFile.lbaLow)
      guard sector >= 1, sector <= UInt64(sectorsPerTrack), head < UInt64(heads) else { return nil }
      first = (cylinder * UInt64(heads) + head) * UInt64(sectorsPerTrack) + sector - 1
    }
    guard first < image.sectorCount, UInt64(count) <= image.sectorCount - first else { return nil }
    return (first, count)
  }

  private func startTransfer(_ command: UInt8, _ taskFile: inout ATATaskFile, write: Bool) -> Bool {
    let lba48 = command == 0x24 || command == 0x29 || command == 0x34 || command == 0x39
    let isMultiple = command == 0xC4 || command == 0x29 || command == 0xC5 || command == 0x39
    if isMultiple && multiple == 0 { return abort() }
    if write && image.isReadOnly { return abort() }
    guard let (first, count) = sectors(&taskFile, lba48: lba48) else { return abort(ErrorBit.idNotFound) }
    let block = isMultiple ? multiple : 1
    if write {
      phase = .dataOut(next: first, remaining: count, block: block, lba48: lba48)
      length = min(count, block) * DiskImage.sectorSize
      status = Status.ready | Status.seekComplete | Status.dataRequest
      error = 0
      // PIO data-out: the host writes the first block without waiting for an interrupt.
      return false
    }
    phase = .dataIn(next: first, remaining: count, block: block, lba48: lba48)
    return loadBlock(&taskFile)
  }

  /// Reads the next block of a data-in transfer into the buffer and raises DRQ (or ends the
  /// command with UNC on a host read error).
  private func loadBlock(_ taskFile: inout ATATaskFile) -> Bool {
    guard case .dataIn(let next, let remaining, let block, let lba48) = phase else { return false }
    let n = min(remaining, block)
    let ok = buffer.withUnsafeMutableBytes { b in
      do throws(DiskImage.IOError) {
        try image.read(sector: next, count: n, into: b)
        return true
      } catch { return false }
    }
    guard ok else {
      if lba48 { taskFile.setLBA48(next) } else if taskFile.usesLBA { taskFile.setLBA28(next) }
      return abort(ErrorBit.uncorrectable)
    }
    sectorsRead &+= UInt64(n)
    position = 0
    length = n * DiskImage.sectorSize
    status = Status.ready | Status.seekComplete | Status.dataRequest
    error = 0
    return true
  }

  // MARK: Data register

  /// A 16-bit read of the data register: the next word of the transfer (all ones when none is
  /// in progress), and whether the device asks for an interrupt (the next block is ready).
  func readData(_ taskFile: inout ATATaskFile) -> (value: UInt16, interrupt: Bool) {
    guard wantsData, position < length else { return (0xFFFF, false) }
    switch phase {
    case .identify, .dataIn: break
    default: return (0xFFFF, false)
    }
    let value = UInt16(buffer[position]) | UInt16(buffer[position + 1]) << 8
    position += 2
    guard position == length else { return (value, false) }
    switch phase {
    case .dataIn(let next, let remaining, let block, let lba48):
      let n = min(remaining, block)
      if remaining > n {
        phase = .dataIn(next: next + UInt64(n), remaining: remaining - n, block: block, lba48: lba48)
        return (value, loadBlock(&taskFile))
      }
    default: break
    }
    phase = .idle
    status = Status.ready | Status.seekComplete
    return (value, false)
  }

  /// A 16-bit write of the data register; returns whether the device asks for an interrupt (a
  /// block was written: the next one may come, or the command ended).
  func writeData(_ value: UInt16, _ taskFile: inout ATATaskFile) -> Bool {
    guard wantsData, position < length, case .dataOut(let next, let remaining, let block, let lba48) = phase else {
      return false
    }
    buffer[position] = UInt8(truncatingIfNeeded: value)
    buffer[position + 1] = UInt8(truncatingIfNeeded: value >> 8)
    position += 2
    guard position == length else { return false }
    let n = min(remaining, block)
    let ok = buffer.withUnsafeBytes { b in
      do throws(DiskImage.IOError) {
        try image.write(sector: next, count: n, from: b)
        return true
      } catch { return false }
    }
    guard ok else {
      if lba48 { taskFile.setLBA48(next) } else if taskFile.usesLBA { taskFile.setLBA28(next) }
      let interrupt = abort()
      status |= Status.deviceFault
      return interrupt
    }
    sectorsWritten &+= UInt64(n)
    guard remaining > n else { return complete() }
    phase = .dataOut(next: next + UInt64(n), remaining: remaining - n, block: block, lba48: lba48)
    position = 0
    length = min(remaining - n, block) * DiskImage.sectorSize
    return true
  }

  // MARK: Endings

  private func complete() -> Bool {
    phase = .idle
    status = Status.ready | Status.seekComplete
    error = 0
    return true
  }

  private func abort(_ bits: UInt8 = ErrorBit.aborted) -> Bool {
    phase = .idle
    position = 0
    length = 0
    status = Status.ready | Status.seekComplete | Status.error
    error = bits
    return true
  }
}

/// The console (`Platform.writeConsole`: the 16550 UART at 0x3F8 natively, `console_io` in PV
/// mode). A lock, recursive per CPU, keeps bytes of
/// different CPUs apart: every byte takes it, and code that prints a line in several calls from a
/// CPU that may run beside others brackets them with `lock()`/`unlock()` so the line stays whole.
enum Console {
  private static var spinLock: TicketLock? = nil
  /// The holding CPU's index + 1, 0 when free.
  private static var owner: UInt64 = 0
  private static var depth = 0

  static func lock() {
    guard let spinLock else { return }
    let me = UInt64(PerCPU.current.pointee.index + 1)
    if atomic_load64(&owner) == me {
      depth += 1
      return
    }
    spinLock.acquire()
    atomic_store64(&owner, me)
    depth = 1
  }

  static func unlock() {
    guard let spinLock else { return }
    depth -= 1
    if depth == 0 {
      atomic_store64(&owner, 0)
      spinLock.release()
    }
  }

  static func initialize() {
    spinLock = TicketLock()
    Platform.initializeConsole()
  }

  static func write(byte: UInt8) {
    lock()
    Platform.writeConsole(byte)
    unlock()
  }

  static func write(_ text: StaticString) {
    text.withUTF8Buffer { for byte in $0 { write(byte: byte) } }
  }

  static func write(bytes: UnsafeRawBufferPointer) {
    for byte in bytes { write(byte: byte) }
  }

  static func write(decimal value: Int) {
    if value < 0 {
      write(byte: UInt8(ascii: "-"))
      write(unsigned: UInt64(bitPattern: Int64(0) &- Int64(value)))
    } else {
      write(unsigned: UInt64(value))
    }
  }

  static func write(unsigned value: UInt64) {
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 24 digits, packed one byte each
    var count = 0
    var rest = value
    repeat {
      let digit = rest % 10
      rest /= 10
      withUnsafeMutableBytes(of: &digits) { $0[count] = UInt8(48 + digit) }
      count += 1
    } while rest != 0
    while count > 0 {
      count -= 1
      write(byte: withUnsafeBytes(of: &digits) { $0[count] })
    }
  }

  static func write(hex value: UInt64) {
    write("0x")
    var shift = 60
    var started = false
    while shift >= 0 {
      let nibble = UInt8((value >> UInt64(shift)) & 0xF)
      if nibble != 0 || started || shift == 0 {
        started = true
        write(byte: nibble < 10 ? 48 + nibble : 87 + nibble)
      }
      shift -= 4
    }
  }

  /// Writes `numerator / denominator` with one decimal.
  static func write(ratio numerator: UInt64, over denominator: UInt64) {
    guard denominator > 0 else {
      write("0.0")
      return
    }
    let tenths = (numerator &* 10 + denominator / 2) / denominator
    write(unsigned: tenths / 10)
    write(byte: UInt8(ascii: "."))
    write(byte: UInt8(48 + tenths % 10))
  }

  static func newline() { write(byte: 10) }
}
